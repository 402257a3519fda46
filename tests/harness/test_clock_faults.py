"""The clock fault families against test doubles: what `clock` (jump, strobe, rate, reset on
one node, the leader, a minority) and `drift-isolate` do to each node's clock and network,
what they record, that the final heal resets every clock, and which configs are refused
(etcd and NATS, whose Go binaries libfaketime cannot reach, in one exact line)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from checkers.rundata import read_records
from harness.nemesis.clocks import NodeClock
from harness.nemesis.core import Nemesis, run_schedule
from harness.nemesis.schedule import FaultEvent
from harness.protocols import ClockOperations
from harness.providers.clock import ClockOp
from harness.run.config import ConfigError, validate
from harness.run.history import HistoryWriter

NODES = ["n1", "n2", "n3", "n4", "n5"]


class ClockProvider:
    """A provider double whose node clocks follow the operations it is given, as the clock
    agent would apply them."""

    name = "fake"
    supports_clock = True
    clock_refusal = ""

    def __init__(self) -> None:
        self.grudge: dict[str, set[str]] = {}
        self.ops: dict[str, list[ClockOp]] = {}
        self.clock: dict[str, NodeClock] = {}

    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        self.grudge = {k: set(v) for k, v in grudge.items()}

    def heal(self) -> None:
        self.grudge = {}

    def change_clock(self, node: str, ops: Sequence[ClockOp]) -> None:
        now = time.time()
        cur = self.clock.get(node) or NodeClock.true(now)
        for op in ops:
            cur = cur.apply(op, now)
        self.clock[node] = cur
        self.ops.setdefault(node, []).extend(ops)

    def clock_state(self, node: str) -> None:
        return None

    def collect_clock(self, node: str, dest: Path) -> None:
        pass

    def offset(self, node: str) -> float:
        c = self.clock.get(node)
        return 0.0 if c is None else c.offset_at(time.time())

    def rate(self, node: str) -> float:
        c = self.clock.get(node)
        return 1.0 if c is None else c.rate


class LeaderDB:
    name = "fake"

    def __init__(self) -> None:
        self.lead: str | None = "n2"

    def leader(self) -> str | None:
        return self.lead


def make(tmp_path: Path, **opts: Any) -> tuple[Nemesis, ClockProvider, HistoryWriter]:
    prov = ClockProvider()
    assert isinstance(prov, ClockOperations)
    tmp_path.mkdir(parents=True, exist_ok=True)
    hist = HistoryWriter(tmp_path / "h.jsonl")
    nem = Nemesis(LeaderDB(), prov, NODES, hist, opts.pop("max_clock_offset", 10.0), opts)  # type: ignore[arg-type]
    return nem, prov, hist


def ops_of(hist: HistoryWriter) -> list[dict[str, Any]]:
    hist.close()
    return [o for o in read_records(hist.path) if o["process"] == "nemesis"]


def test_a_jump_steps_the_clock_and_stays_until_a_reset(tmp_path: Path) -> None:
    nem, prov, hist = make(tmp_path, clock_targets=["one"], max_clock_offset=4.0)
    a = nem.start(FaultEvent(0.0, "clock", "jump", 1.0, seed=5))
    node = a.undo["nodes"][0]
    nem.stop(a)
    ops = ops_of(hist)
    start = ops[0]["value"]
    assert ops[0]["f"] == "start-clock" and start["kind"] == "jump" and start["target"] == "one"
    assert start["nodes"] == [node] and 0.5 <= abs(start["offset_s"]) <= 4.0
    assert prov.offset(node) == pytest.approx(start["offset_s"], abs=0.01)
    assert start["clocks"][node]["offset_s"] == pytest.approx(start["offset_s"], abs=0.01)
    assert start["clocks"][node]["rate"] == 1.0
    # the stop leaves the step in place and says so
    assert ops[1]["f"] == "stop-clock" and ops[1]["value"]["clocks"][node]["offset_s"] == pytest.approx(
        start["offset_s"], abs=0.01)
    assert prov.ops[node] == [ClockOp("jump", start["offset_s"])]

    nem2, prov2, hist2 = make(tmp_path / "b", clock_targets=["all"])
    nem2.start(FaultEvent(0.0, "clock", "jump", 1.0, seed=5))
    nem2.stop()
    nem2.start(FaultEvent(0.0, "clock", "reset", 1.0, seed=6))
    nem2.stop()
    assert all(abs(prov2.offset(n)) < 1e-6 and prov2.ops[n][-1] == ClockOp("reset") for n in NODES)
    reset = ops_of(hist2)[2]["value"]
    assert reset["kind"] == "reset" and reset["nodes"] == NODES
    assert reset["clocks"] == {n: {"offset_s": 0.0, "rate": 1.0} for n in NODES}


def test_a_rate_drifts_for_the_duration_and_keeps_its_offset(tmp_path: Path) -> None:
    nem, prov, hist = make(tmp_path, clock_targets=["leader"], clock_rates=[0.25])
    a = nem.start(FaultEvent(0.0, "clock", "rate", 1.0, seed=1))
    assert a.undo["nodes"] == ["n2"] and prov.rate("n2") == 0.25
    time.sleep(0.2)
    nem.stop(a)
    assert prov.rate("n2") == 1.0
    drift = prov.offset("n2")
    assert -0.2 < drift < -0.1, "0.2 s at rate 0.25 leaves the clock about 0.15 s behind"
    start, stop = (o["value"] for o in ops_of(hist))
    assert start == {"kind": "rate", "target": "leader", "nodes": ["n2"], "rate": 0.25,
                     "clocks": {"n2": {"offset_s": pytest.approx(0.0, abs=1e-3), "rate": 0.25}}}
    assert stop["rate"] == 1.0 and stop["clocks"]["n2"]["rate"] == 1.0
    assert stop["clocks"]["n2"]["offset_s"] == pytest.approx(drift, abs=0.01)


def test_a_strobe_flips_for_its_duration_and_ends_where_it_started(tmp_path: Path) -> None:
    nem, prov, hist = make(tmp_path, clock_targets=["minority"], strobe_period=0.02, max_clock_offset=2.0)
    ev = FaultEvent(0.0, "clock", "strobe", 0.3, seed=3)
    run_schedule(nem, [ev], time.monotonic(), threading.Event())
    start, stop = (o["value"] for o in ops_of(hist))
    nodes = start["nodes"]
    assert len(nodes) == 2 and start["period_s"] == 0.02 and 0.5 <= start["offset_s"] <= 2.0
    assert stop["flips"] >= 6 and stop["flips"] % 2 == 0
    for n in nodes:
        jumps = [op.value for op in prov.ops[n]]
        assert len(jumps) == stop["flips"] and sum(jumps) == pytest.approx(0.0, abs=1e-9)
        assert set(jumps) == {start["offset_s"], -start["offset_s"]}
        assert abs(prov.offset(n)) < 1e-6


def test_a_strobe_cut_short_by_the_end_of_the_run_still_ends_where_it_started(tmp_path: Path) -> None:
    nem, prov, hist = make(tmp_path, clock_targets=["one"], strobe_period=0.05)
    stop = threading.Event()
    t = threading.Thread(target=run_schedule, args=(nem, [FaultEvent(0.0, "clock", "strobe", 60.0, 4)],
                                                    time.monotonic(), stop))
    t.start()
    time.sleep(0.12)
    stop.set()
    t.join(5)
    assert not t.is_alive()
    node = next(iter(prov.ops))
    assert abs(prov.offset(node)) < 1e-6


def test_heal_resets_every_clock_and_says_which(tmp_path: Path) -> None:
    nem, prov, hist = make(tmp_path, faults=["clock"], clock_targets=["one"], clock_rates=[2.0])
    nem.start(FaultEvent(0.0, "clock", "rate", 5.0, seed=1))
    nem.start(FaultEvent(0.0, "clock", "jump", 5.0, seed=2))
    nem.heal_all()
    assert all(prov.ops[n][-1] == ClockOp("reset") and abs(prov.offset(n)) < 1e-6 and prov.rate(n) == 1.0
               for n in NODES)
    heal = ops_of(hist)[-1]
    assert heal["f"] == "heal" and "error" not in heal
    assert heal["value"]["clocks_reset"] == NODES
    assert heal["value"]["clocks"] == {n: {"offset_s": 0.0, "rate": 1.0} for n in NODES}


def test_heal_of_a_run_without_clock_faults_leaves_clocks_alone(tmp_path: Path) -> None:
    nem, prov, hist = make(tmp_path, faults=["partition"])
    nem.heal_all()
    assert prov.ops == {} and "clocks_reset" not in ops_of(hist)[-1]["value"]


def test_drift_isolate_slows_the_leader_then_isolates_it(tmp_path: Path) -> None:
    nem, prov, hist = make(tmp_path, clock_rates=[0.5], drift_before_isolate=0.1)
    seen: dict[str, Any] = {}

    def watch() -> None:  # what the network and clock are while the fault lasts
        time.sleep(0.05)
        seen["early"] = (dict(prov.grudge), prov.rate("n2"))
        time.sleep(0.15)
        seen["late"] = (dict(prov.grudge), prov.rate("n2"))

    w = threading.Thread(target=watch)
    w.start()
    run_schedule(nem, [FaultEvent(0.0, "drift-isolate", "leader", 0.3, 9)], time.monotonic(), threading.Event())
    w.join()
    assert seen["early"] == ({}, 0.5), "drifting, not yet isolated"
    grudge, rate = seen["late"]
    assert rate == 0.5 and grudge["n2"] == {"n1", "n3", "n4", "n5"} and all("n2" in grudge[n] for n in NODES if n != "n2")
    assert prov.grudge == {} and prov.rate("n2") == 1.0
    ops = ops_of(hist)
    assert [o["f"] for o in ops] == ["start-drift-isolate", "isolate", "stop-drift-isolate"]
    start, iso, stop = (o["value"] for o in ops)
    assert start["nodes"] == ["n2"] and start["rate"] == 0.5 and start["isolate_after_s"] == 0.1
    assert start["clocks"]["n2"]["rate"] == 0.5
    assert iso == {"fault": "drift-isolate", "kind": "leader", "nodes": ["n2"],
                   "groups": [["n2"], ["n1", "n3", "n4", "n5"]], "leader": "n2"}
    assert ops[1]["time"] - ops[0]["time"] >= 0.09e9
    assert stop["healed"] is True and stop["clocks"]["n2"]["rate"] == 1.0
    assert stop["clocks"]["n2"]["offset_s"] < -0.1


def test_clock_faults_without_clock_control_are_recorded_as_errors(tmp_path: Path) -> None:
    nem, prov, hist = make(tmp_path)
    prov.supports_clock = False
    prov.clock_refusal = "libfaketime is not installed"
    nem.start(FaultEvent(0.0, "drift-isolate", "one", 1.0, 1))
    nem.stop()
    op = ops_of(hist)[0]
    assert op["error"] == "clock faults are not supported by the fake provider: libfaketime is not installed"
    assert prov.ops == {} and prov.grudge == {}


GO_REASON = "is a statically linked Go binary that reads time through the vDSO; libfaketime cannot reach it"


@pytest.mark.parametrize("fault", ["clock", "drift-isolate"])
@pytest.mark.parametrize(("db", "binary"), [("etcd", "etcd"), ("nats", "nats-server")])
def test_go_systems_refuse_clock_faults_in_one_line(db: str, binary: str, fault: str) -> None:
    with pytest.raises(ConfigError) as e:
        validate({"db": db, "nemesis": {"faults": ["kill", fault]}}, "c.yaml")
    assert str(e.value) == (f"c.yaml: nemesis.faults: {fault} cannot be made real for db {db} on the local "
                            f"provider: {binary} {GO_REASON}")


@pytest.mark.parametrize(("nemesis", "message"), [
    ({"faults": ["drift-isolate"], "duration": 3, "drift_before_isolate": 3},
     "drift-isolate cannot be made real for db raftkv on the local provider: nemesis.drift_before_isolate (3 s) "
     "must be shorter than nemesis.duration (3 s), or the node is never isolated"),
    ({"faults": ["clock"], "clock_rates": [0.5, 0]}, "nemesis.clock_rates: item 1: must be >= 0.01, got int 0"),
    ({"faults": ["clock"], "clock_rates": "fast"}, "nemesis.clock_rates: expected numbers separated by commas"),
    ({"faults": ["clock"], "clock_targets": ["majority"]}, "nemesis.clock_targets: item 0: expected one of one"),
    ({"faults": ["clock"], "clocks": ["warp"]}, "nemesis.clocks: item 0: expected one of jump, strobe, rate, reset"),
    ({"faults": ["drift-isolate"], "drift_targets": ["minority"]},
     "nemesis.drift_targets: item 0: expected one of leader, one"),
])
def test_clock_parameters_are_checked(nemesis: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate({"nemesis": nemesis})


def test_clock_parameters_resolve_from_lists_or_text() -> None:
    nem = validate({"nemesis": {"faults": ["clock", "drift-isolate"], "clock_rates": "0.25, 0.5",
                                "clock_targets": "leader,minority"}})["nemesis"]
    assert nem["clock_rates"] == [0.25, 0.5] and nem["clock_targets"] == ["leader", "minority"]
    assert nem["clocks"] == ["jump", "strobe", "rate", "reset"] and nem["drift_targets"] == ["leader", "one"]
