"""Config validation: defaults, overrides, and one-line errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.run import config
from harness.run.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, raw: object) -> Path:
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"nemesis": {"interval": "abc"}}, "nemesis.interval: expected a number, got 'abc'"),
        ({"nodse": 3}, "nodse: unknown field"),
        ({"nemesis": {"faults": ["partition", "flood"]}}, "nemesis.faults: item 1: expected one of"),
        ({"time_limit": True}, "time_limit: expected a number, got bool True"),
        ({"nodes": 1, "nemesis": {"faults": ["partition"]}}, "nemesis.faults: partition cannot be made real for db raftkv on the local provider: needs at least 2 nodes"),
        ({"nodes": 2, "nemesis": {"faults": ["membership"]}}, "nemesis.faults: membership cannot be made real for db raftkv on the local provider: needs at least 3 nodes"),
        ({"db": "etcd", "nemesis": {"faults": ["clock"]}}, "nemesis.faults: clock cannot be made real for db etcd on the local provider: etcd is a statically linked Go binary"),
        ({"db": "etcd", "bugs": ["stale-read"], "nemesis": {"faults": []}}, "bugs: bug switches exist only for raftkv"),
        ({"bugs": [""]}, "bugs: item 0: empty name"),
        ({"concurrency": "2x"}, "concurrency: expected a positive integer or a multiple of nodes"),
        ({"raft": {"read_mode": "eventual"}}, "raft.read_mode: expected one of linearizable, lease, serializable"),
        ({"raft": {"election_tik": 3}}, "raft.election_tik: unknown field"),
        ({"warmup": 70, "time_limit": 60}, "warmup: must be shorter than time_limit"),
        ({"nodes": ["n1", "x2"]}, "nodes: node names are n1..nN"),
        ({"workload_opts": {"read": 0, "write": 0, "cas": 0, "delete": 0}}, "workload_opts: the op mix weights"),
        ([1, 2], "(top level): expected a mapping"),
        ({"provider": "vm"}, "provider: expected one of local, netns, ssh, docker, got 'vm'"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, raw: object, message: str) -> None:
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError) as e:
        config.load(path)
    text = str(e.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text
    assert "\n" not in text


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: a\nnodes: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: invalid YAML"):
        config.load(p)


def test_defaults_resolve_concurrency_and_seed() -> None:
    cfg = config.validate({"nodes": 5, "concurrency": "3n"})
    assert cfg["nodes"] == ["n1", "n2", "n3", "n4", "n5"]
    assert cfg["concurrency"] == 15
    assert isinstance(cfg["seed"], int)
    assert cfg["raft"]["election_tick"] == 10


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"rate": 10})
    cfg = config.load(path, {"rate": 50.0, "nemesis.faults": ["kill"], "seed": 3})
    assert cfg["rate"] == 50.0 and cfg["nemesis"]["faults"] == ["kill"] and cfg["seed"] == 3
    with pytest.raises(ConfigError, match=r"x.yaml: nemesis.interval: expected a number"):
        config.load(path, {"nemesis.interval": "soon"})


@pytest.mark.parametrize("name", ["local", "local-links", "netns", "ssh-lab", "etcd", "etcd-local", "docker", "nightly"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = config.load(REPO / "configs" / f"{name}.yaml")
    assert cfg["time_limit"] > 0


def test_saved_test_yaml_replays_as_a_config(tmp_path: Path) -> None:
    """The report's reproduce command runs the saved test.yaml: run metadata is not input."""
    resolved = config.load(None, {"seed": 42})
    saved = {**resolved, "versions": {"python": "3.11"}, "start_time": 1764165000.5}
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(saved))
    replayed = config.load(path)
    assert replayed == resolved
    bad = {**saved, "versionz": 1}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(config.ConfigError, match="versionz: unknown field"):
        config.load(path)
