"""The link fault family: which links it picks, what it applies and records, that stop and the
final heal undo it, and which configs are refused for which DB and provider."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from checkers.rundata import read_records
from harness.nemesis.core import Nemesis
from harness.nemesis.faults import link
from harness.nemesis.schedule import FaultEvent
from harness.net.linkcond import LinkConditions
from harness.protocols import LinkFaults
from harness.providers.local import LocalProvider
from harness.run.config import ConfigError, validate
from harness.run.history import HistoryWriter

NODES = ["n1", "n2", "n3"]


class LinkProvider:
    """A provider double that records the link conditions it is asked for."""

    name = "fake"
    supports_clock = False

    def __init__(self, unit: str = "message") -> None:
        self.unit = unit
        self.owned: dict[str, dict[tuple[str, str], LinkConditions]] = {}

    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        pass

    def heal(self) -> None:  # partitions; link conditions are not partitions
        pass

    def link_unit(self, db: object) -> str:
        return self.unit

    def link_refusal(self, kind: str, db: object) -> str | None:
        return None

    def set_link_conditions(self, owner: str, conditions: Mapping[tuple[str, str], LinkConditions], seed: int) -> None:
        self.owned[owner] = dict(conditions)

    def clear_link_conditions(self, owner: str | None = None) -> dict[str, Any]:
        owners = list(self.owned) if owner is None else [owner]
        links = sorted({pair for o in owners for pair in self.owned.pop(o, {})})
        return {"links": [list(p) for p in links]} if links else {}


class DB:
    name = "fake"


def nemesis(tmp_path: Path, opts: Mapping[str, Any] | None = None) -> tuple[Nemesis, LinkProvider, HistoryWriter]:
    prov = LinkProvider()
    hist = HistoryWriter(tmp_path / "h.jsonl")
    return Nemesis(DB(), prov, NODES, hist, opts=opts), prov, hist  # type: ignore[arg-type]


def test_the_fake_is_a_link_fault_provider() -> None:
    assert isinstance(LinkProvider(), LinkFaults)
    assert isinstance(LocalProvider(Path("/nonexistent")), LinkFaults)


@pytest.mark.parametrize(
    ("kind", "applied"),
    [
        ("delay", {"delay_ms": 80.0}),
        ("jitter", {"delay_ms": 80.0, "jitter_ms": 20.0}),
        ("loss", {"loss": 0.25}),
        ("duplicate", {"duplicate": 0.3}),
        ("reorder", {"delay_ms": 80.0, "jitter_ms": 20.0, "reorder": 0.4}),
    ],
)
def test_each_kind_applies_and_records_its_parameters(tmp_path: Path, kind: str, applied: dict[str, float]) -> None:
    opts = {"link_delay_ms": 80, "link_jitter_ms": 20, "link_loss": 0.25, "link_duplicate": 0.3,
            "link_reorder": 0.4, "link_targets": ["all"]}  # fmt: skip
    nem, prov, hist = nemesis(tmp_path, opts)
    nem.start(FaultEvent(1.0, "link", kind, 1.0, 5))
    (owner, conds), = prov.owned.items()
    assert set(conds) == {(s, d) for s in NODES for d in NODES if s != d}
    assert set(conds.values()) == {LinkConditions(unit="message", **applied)}
    nem.stop()
    assert prov.owned == {}
    hist.close()
    start, stop = read_records(tmp_path / "h.jsonl")
    assert start["f"] == "start-link" and "error" not in start
    assert start["value"] == {"kind": kind, "target": "all", "links": [list(k) for k in sorted(conds)],
                              "unit": "message", **applied}  # fmt: skip
    assert stop["f"] == "stop-link" and stop["value"]["healed"] is True
    assert len(stop["value"]["links"]) == 6


@pytest.mark.parametrize("seed", range(30))
def test_node_targets_follow_the_direction(seed: int) -> None:
    chosen, links = link.choose_links(NODES, "node", random.Random(seed))
    node, direction = chosen["node"], chosen["direction"]
    want_in = {(s, node) for s in NODES if s != node}
    want_out = {(node, d) for d in NODES if d != node}
    expected = {"in": want_in, "out": want_out, "both": want_in | want_out}[direction]
    assert set(links) == expected


@pytest.mark.parametrize("seed", range(30))
def test_some_is_a_nonempty_subset_of_at_most_half_the_links(seed: int) -> None:
    chosen, links = link.choose_links(NODES, "some", random.Random(seed))
    assert chosen == {"target": "some"}
    assert 1 <= len(links) <= 3 and len(set(links)) == len(links)
    assert all(s != d and s in NODES and d in NODES for s, d in links)


def test_heal_clears_every_link_fault(tmp_path: Path) -> None:
    nem, prov, hist = nemesis(tmp_path, {"link_targets": ["node"]})
    nem.start(FaultEvent(1.0, "link", "loss", 1.0, 9))
    assert prov.owned
    nem.heal_all()  # stops the active fault, then every family heals
    assert prov.owned == {}
    hist.close()
    heal = read_records(tmp_path / "h.jsonl")[-1]
    assert heal["f"] == "heal" and "error" not in heal
    # conditions no active fault accounts for (a crashed stop) are cleared and recorded too
    prov.set_link_conditions("orphan", {("n1", "n2"): LinkConditions(loss=0.5)}, 0)
    done: dict[str, Any] = {}
    link.heal(nem.state, done, [])
    assert done == {"links_restored": {"links": [["n1", "n2"]]}} and prov.owned == {}


def test_conditions_a_provider_cannot_build_are_recorded_as_a_failed_start(tmp_path: Path) -> None:
    nem, prov, hist = nemesis(tmp_path)
    prov.unit = "byte"  # a byte stream cannot lose data: the fault fails, the run goes on
    nem.start(FaultEvent(1.0, "link", "loss", 1.0, 9))
    hist.close()
    (start,) = read_records(tmp_path / "h.jsonl")
    assert start["f"] == "start-link" and "cannot lose or duplicate" in start["error"]
    assert prov.owned == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"db": "etcd"}, "link cannot be made real for db etcd on the local provider: kind 'loss': the local "
                         "provider's proxies see etcd's peer traffic as TCP byte streams"),
        ({"db": "etcd", "nemesis": {"links": ["duplicate"]}}, "kind 'duplicate'"),
        ({"provider": "netns"}, "on the netns provider: kind 'delay': needs tc netem, which this kernel lacks"),
        ({"provider": "netns", "nemesis": {"links": ["loss", "reorder"]}}, "kind 'reorder': needs tc netem"),
        ({"provider": "ssh", "provider_opts": {"hosts": {f"n{i}": {"hostname": f"10.0.0.{i}"} for i in (1, 2, 3)}}},
         "the ssh provider lacks LinkFaults"),
        ({"nodes": 1}, "needs at least 2 nodes"),
        ({"nemesis": {"link_delay_ms": 0, "link_jitter_ms": 0}}, "kind 'reorder' needs nemesis.link_delay_ms"),
        ({"nemesis": {"link_loss": 1.5}}, "nemesis.link_loss: must be <= 1"),
        ({"nemesis": {"link_targets": ["ring"]}}, "nemesis.link_targets: item 0: expected one of node, some, all"),
        ({"nemesis": {"links": ["drop"]}}, "nemesis.links: item 0: expected one of delay, jitter, loss"),
    ],
)
def test_configs_that_cannot_be_made_real_are_refused_in_one_line(raw: dict[str, Any], message: str) -> None:
    cfg = {**raw, "nemesis": {"faults": ["link"], **raw.get("nemesis", {})}}
    with pytest.raises(ConfigError) as e:
        validate(cfg, "x.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "raw",
    [
        {},  # raftkv on local: every kind, per Raft message
        {"db": "etcd", "nemesis": {"links": ["delay", "jitter", "reorder"]}},
        {"provider": "netns", "nemesis": {"links": ["loss"]}},
        {"provider": "netns", "db": "etcd", "nemesis": {"links": ["loss"]}},
    ],
)
def test_what_can_be_made_real_validates(raw: dict[str, Any]) -> None:
    cfg = validate({**raw, "nemesis": {"faults": ["link"], **raw.get("nemesis", {})}}, "x.yaml")
    assert cfg["nemesis"]["faults"] == ["link"]


def test_local_provider_degrades_both_kinds_of_proxies_and_reports_what_it_did(tmp_path: Path) -> None:
    prov = LocalProvider(tmp_path, clock=False)
    prov.setup(NODES)
    try:
        delay = LinkConditions(delay_ms=50, unit="byte")
        prov.set_link_conditions("a", {("n1", "n2"): delay}, seed=1)
        prov.set_link_conditions("b", {("n2", "n1"): LinkConditions(loss=0.2, reorder=0.5, delay_ms=10)}, seed=1)
        assert prov.hub is not None and set(prov.hub.conditions()) == {("n1", "n2"), ("n2", "n1")}
        # etcd's proxies, made later, get the byte-stream conditions in effect
        prov.http_peer_address("n2")
        assert prov.http_peers is not None and prov.http_peers.conditions() == {("n1", "n2"): delay}
        assert prov.clear_link_conditions("a") == {"links": [["n1", "n2"]], "delayed": 0}
        assert prov.http_peers.conditions() == {}
        done = prov.clear_link_conditions()
        assert done == {"links": [["n2", "n1"]], "delayed": 0, "msgs_lost": 0, "overtaken": 0}
        assert prov.clear_link_conditions() == {} and prov.hub.conditions() == {}
    finally:
        prov.teardown()
