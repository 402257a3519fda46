"""Whole runs through the run engine on network namespaces: raftkv with partitions, kills,
pauses and clock faults, and a real etcd cluster. Each must end valid with a report, and
leave nothing behind: no namespace, link or iptables rule of the run, no node process.

The ssh-provider run is tests/remote/test_ssh.py::test_whole_raftkv_run_over_ssh;
the local-process run is tests/harness/test_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from checkers.rundata import StoredRun
from checkers.safety.checker import EtcdLogChecker
from tests.support.env import REPO, find_libfaketime, procs_naming, require_binary, require_root

# Short and modest: the machine is shared, and the faults still fire several times.
SHORT = {"time_limit": 20, "warmup": 2, "rate": 30, "nemesis.interval": 4, "nemesis.duration": 2}


def leftovers_of(run_id: str) -> list[str]:
    """Namespaces, links and root iptables rules still carrying the run's id."""
    def out(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout

    tag = f"fl-{run_id}"
    found = [f"netns {line.split()[0]}" for line in out(["ip", "netns", "list"]).splitlines()
             if line.startswith(f"{tag}-")]
    for line in out(["ip", "-o", "link", "show"]).splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name == f"flbr{run_id}" or name.startswith((f"{tag}-", f"flp{run_id}-")):
            found.append(f"link {name}")
    found += [f"rule {line}" for line in out(["iptables-save"]).splitlines() if tag in line]
    return found


def execute(config: str, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any], str]:
    """Run the engine on configs/<config>; returns the outcome, results.json and the run id."""
    from harness.run.config import load
    from harness.run.runner import Run

    run = Run(load(REPO / "configs" / config, overrides))
    try:
        outcome = run.execute()
    finally:
        run_id = getattr(run.provider, "run_id", None)
        if run_id is not None:
            # Whatever the outcome, nothing of the run may remain (teardown already ran).
            assert leftovers_of(run_id) == [], "the run left resources behind"
    assert run_id is not None, f"the netns provider was never created: {outcome.failure}"
    assert outcome.failure is None, outcome.failure
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert outcome.report is not None and outcome.report.exists()
    return outcome, results, run_id


def history_of(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def assert_valid(results: dict[str, Any]) -> None:
    verdicts = {name: c.get("valid") for name, c in results["checkers"].items()}
    assert results["valid"] is True, verdicts


@pytest.mark.root
@pytest.mark.slow
def test_raftkv_netns_run_with_partition_kill_pause_clock(store: Path) -> None:
    require_root()
    require_binary("ip", "iptables", "iptables-save")
    if find_libfaketime() is None:
        pytest.skip("needs libfaketime (Debian package faketime)")
    outcome, results, _ = execute("netns.yaml", {
        **SHORT, "nodes": 3, "seed": 31, "store": str(store), "concurrency": 3,
        "nemesis.faults": ["partition", "kill", "pause", "clock"],
    })
    assert_valid(results)
    assert {"linearizability", "raft-safety", "recovery"} <= set(results["checkers"])
    history = history_of(outcome.run_dir)
    assert sum(1 for op in history if op["type"] == "ok" and op["process"] != "nemesis") > 50
    started = {op["f"] for op in history if op["process"] == "nemesis" and "error" not in op}
    assert {"start-partition", "start-kill", "start-pause", "start-clock"} <= started, started
    for node in ("n1", "n2", "n3"):
        assert (outcome.run_dir / "nodes" / node / "events.jsonl").stat().st_size > 0
        # each node's clock, collected; the heal's reset was the last operation it applied
        ops = (outcome.run_dir / "nodes" / node / "clock.log").read_text().splitlines()[1:]
        last = (outcome.run_dir / "nodes" / node / "clock.applied").read_text().splitlines()[-1].split()
        assert ops[-1] == "reset" and int(last[1]) == len(ops) and last[4] == "1"
    assert procs_naming(str(store)) == []


@pytest.mark.root
@pytest.mark.slow
def test_etcd_netns_run(store: Path) -> None:
    require_root()
    require_binary("ip", "iptables", "iptables-save", "etcd", "etcdctl")
    outcome, results, _ = execute("etcd.yaml", {**SHORT, "seed": 32, "store": str(store), "concurrency": 3})
    assert_valid(results)
    # Raft safety judged from the members' etcd logs, not skipped.
    safety = results["checkers"]["raft-safety"]
    assert safety["valid"] is True and safety["stats"]["events"] > 0, safety
    history = history_of(outcome.run_dir)
    assert sum(1 for op in history if op["type"] == "ok" and op["process"] != "nemesis") > 50
    assert any(op["process"] == "nemesis" and op["f"].startswith("start-") for op in history)
    assert procs_naming(str(store)) == []


def _zap(ts: str, msg: str) -> str:
    return json.dumps({"level": "info", "ts": f"2026-01-02T03:04:{ts}Z", "caller": "raft/raft.go:1", "msg": msg})


@pytest.mark.parametrize(("second_leader_term", "valid"), [(3, True), (2, False)])
def test_etcd_raft_safety_reads_collected_logs(tmp_path: Path, second_leader_term: int, valid: bool) -> None:
    """The etcd analysis judges the members' collected logs: two leaders in one term is caught."""
    lines = {
        "n1": ["aa became candidate at term 2", "aa became leader at term 2"],
        "n2": [f"bb became candidate at term {second_leader_term}", f"bb became leader at term {second_leader_term}"],
    }
    for i, (node, msgs) in enumerate(lines.items()):
        (tmp_path / "nodes" / node).mkdir(parents=True)
        log = "\n".join(_zap(f"{10 * i + j:02d}.000", m) for j, m in enumerate(msgs))
        (tmp_path / "nodes" / node / "etcd.log").write_text(log + "\n")
    result = EtcdLogChecker().check(StoredRun(tmp_path))
    assert result.name == "raft-safety" and result.valid is valid
    assert result.details["stats"]["events"] == 4
    assert [v["kind"] for v in result.details["violations"]] == ([] if valid else ["election-safety"])


def test_etcd_raft_safety_without_logs_is_unknown(tmp_path: Path) -> None:
    result = EtcdLogChecker().check(StoredRun(tmp_path))
    assert result.valid == "unknown" and "etcd.log" in result.details["error"]


@pytest.mark.root
def test_leftover_probe_sees_a_live_run(tmp_path: Path) -> None:
    """The 'nothing left behind' assertion above can fail: it sees a provisioned run."""
    require_root()
    require_binary("ip", "iptables", "iptables-save")
    from harness.providers.netns import NetnsProvider

    provider = NetnsProvider(tmp_path)
    try:
        provider.setup(["n1", "n2"])
        provider.partition({"n1": {"n2"}})
        found = leftovers_of(provider.run_id)
    finally:
        provider.teardown()
    kinds = {item.split()[0] for item in found}
    assert kinds == {"netns", "link", "rule"}, found
    assert f"netns fl-{provider.run_id}-n1" in found and f"link flbr{provider.run_id}" in found
    assert leftovers_of(provider.run_id) == []
