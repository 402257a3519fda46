"""NATS in the config: faults that cannot be made real are refused in one line naming the
fault, the DB and the reason; db_opts are checked field by field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.db.nats_conf import NatsOptions, render_config
from harness.protocols import HarnessError
from harness.run import config
from harness.run.config import ConfigError
from tests.support.env import REPO


def test_shipped_configs_load() -> None:
    for name in ("nats.yaml", "nats-netns.yaml"):
        cfg = config.load(REPO / "configs" / name)
        assert cfg["db"] == "nats"
        NatsOptions.from_test(cfg)


def test_clock_faults_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"db": "nats", "nemesis": {"faults": ["partition", "clock"], "partitions": ["halves"]}}))
    with pytest.raises(ConfigError) as e:
        config.load(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: nemesis.faults: clock cannot be made real for db nats on the local provider: "
                          "nats-server is a statically linked Go binary")
    assert "libfaketime" in msg


@pytest.mark.parametrize(("provider", "nodes", "refused"), [
    ("local", 3, True), ("local", 4, True), ("local", 5, False), ("netns", 3, False),
])
def test_one_way_ring_partitions_on_local(tmp_path: Path, provider: str, nodes: int, refused: bool) -> None:
    raw = {"db": "nats", "provider": provider, "nodes": nodes,
           "nemesis": {"faults": ["partition"], "partitions": ["ring", "halves"]}}
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(raw))
    if not refused:
        config.load(p)
        return
    with pytest.raises(ConfigError, match=r"nemesis.faults: partition cannot be made real for db nats on the local "
                                          r"provider: ring partitions on fewer than 5 nodes cut links one way only.*"
                                          r"use 5 nodes or provider netns"):
        config.load(p)


def test_link_faults_on_local_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "l.yaml"
    p.write_text(yaml.safe_dump({"db": "nats", "nemesis": {"faults": ["link"], "links": ["delay"]}}))
    with pytest.raises(ConfigError, match=r"nemesis.faults: link cannot be made real for db nats on the local "
                                          r"provider: NATS routes are one two-way connection per pair"):
        config.load(p)


def test_every_other_fault_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "all.yaml"
    p.write_text(yaml.safe_dump({"db": "nats", "nemesis": {
        "faults": ["partition", "kill", "pause", "transfer", "membership"],
        "partitions": ["halves", "one", "leader", "bridge"]}}))
    cfg = config.load(p)
    assert cfg["nemesis"]["faults"] == ["partition", "kill", "pause", "transfer", "membership"]


def test_bad_db_opts_are_refused_at_validation(tmp_path: Path) -> None:
    p = tmp_path / "o.yaml"
    p.write_text(yaml.safe_dump({"db": "nats", "db_opts": {"replicas": 7}}))
    with pytest.raises(ConfigError, match=r"o.yaml: db_opts.replicas: 7 is not an integer from 1 to 3"):
        config.load(p)


@pytest.mark.parametrize(("opts", "field"), [
    ({"replicas": 4}, "db_opts.replicas"),
    ({"replicas": 0}, "db_opts.replicas"),
    ({"allow_direct": "yes"}, "db_opts.allow_direct"),
    ({"sync_interval": "often"}, "db_opts.sync_interval"),
    ({"bucket": "a.b"}, "db_opts.bucket"),
    ({"storage": "disk"}, "db_opts.storage"),
    ({"syncinterval": "1s"}, "db_opts.syncinterval: unknown nats option"),
])
def test_bad_db_opts_name_the_field(opts: dict[str, object], field: str) -> None:
    with pytest.raises(HarnessError, match=field):
        NatsOptions.from_test({"nodes": ["n1", "n2", "n3"], "db_opts": opts})


def test_rendered_config_pins_routes_and_keeps_options() -> None:
    opts = NatsOptions(sync_interval="always")
    text = render_config(name="n1", client=("127.0.0.1", 4000), monitor=("127.0.0.1", 4001),
                         cluster=("127.0.0.1", 4002), routes=[("127.0.0.1", 5000), ("127.0.0.1", 5001)],
                         store_dir="/tmp/x/store", opts=opts, advertise=("127.0.0.1", 1))
    assert 'routes: ["nats-route://127.0.0.1:5000", "nats-route://127.0.0.1:5001"]' in text
    assert 'advertise: "127.0.0.1:1"' in text
    assert 'sync_interval: "always"' in text
    assert "debug: true" in text
    assert 'store_dir: "/tmp/x/store"' in text
