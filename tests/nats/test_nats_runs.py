"""Whole `faultline run`s of a real NATS JetStream cluster on the local provider."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.env import REPO, procs_naming, require_binary

pytestmark = pytest.mark.slow


def run(config: Path, store: Path, seed: int, cwd: Path, timeout: float = 150) -> tuple[subprocess.CompletedProcess[str], Path]:
    argv = [sys.executable, "-m", "harness", "run", str(config), "--store", str(store), "--seed", str(seed)]
    p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p, (store / "latest").resolve()


def history(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_shipped_config_gives_both_verdicts_with_faults_recorded(store: Path, tmp_path: Path) -> None:
    """configs/nats.yaml as shipped: 25 s of load and faults end in a linearizability verdict
    and a Raft-safety verdict for NATS (valid or not: NATS is under test, not faultline)."""
    require_binary("nats-server")
    p, run_dir = run(REPO / "configs" / "nats.yaml", store, 11, tmp_path)
    assert p.returncode in (0, 1), p.stdout + p.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["checkers"]["linearizability"]["valid"] in (True, False)
    safety = results["checkers"]["raft-safety"]
    assert safety["valid"] in (True, False)
    assert safety["stats"]["groups"] >= 2 and safety["stats"]["terms_with_leader"] >= 2
    h = history(run_dir)
    assert sum(1 for op in h if op["type"] == "ok" and op["process"] != "nemesis") >= 200
    started = [op for op in h if op["process"] == "nemesis" and op["f"].startswith("start-") and "error" not in op]
    assert started, [op for op in h if op["process"] == "nemesis"]
    test = yaml.safe_load((run_dir / "test.yaml").read_text())
    assert test["db_opts"] == {"replicas": 3, "allow_direct": False, "sync_interval": None}
    assert all((run_dir / "nodes" / n / "nats.log").exists() for n in ("n1", "n2", "n3"))
    assert procs_naming(str(store)) == []


def test_partition_and_leader_kill_end_in_a_verdict(store: Path, tmp_path: Path) -> None:
    require_binary("nats-server")
    cfg = yaml.safe_load((REPO / "configs" / "nats.yaml").read_text())
    cfg.update(time_limit=18, warmup=2, rate=50, recovery_timeout=30)
    cfg["nemesis"].update(faults=["partition", "kill"], partitions=["leader"], kills=["leader"],
                          interval=6, duration=5)
    config = tmp_path / "nats-partition-kill.yaml"
    config.write_text(yaml.safe_dump(cfg))
    p, run_dir = run(config, store, 5, tmp_path)
    assert p.returncode in (0, 1), p.stdout + p.stderr[-3000:]
    assert "verdict: " in p.stdout
    h = history(run_dir)
    faults = {op["f"] for op in h if op["process"] == "nemesis" and "error" not in op}
    assert {"start-partition", "start-kill"} <= faults, faults
    results = json.loads((run_dir / "results.json").read_text())
    assert results["checkers"]["recovery"]["valid"] is True
    assert procs_naming(str(store)) == []


def test_log_workload_reads_every_replica(store: Path, tmp_path: Path) -> None:
    require_binary("nats-server")
    cfg = yaml.safe_load((REPO / "configs" / "nats.yaml").read_text())
    cfg.update(workload="log", time_limit=12, warmup=2, rate=50)
    cfg["nemesis"].update(faults=["kill"], kills=["leader"], interval=5, duration=3)
    config = tmp_path / "nats-log.yaml"
    config.write_text(yaml.safe_dump(cfg))
    p, run_dir = run(config, store, 9, tmp_path)
    assert p.returncode in (0, 1), p.stdout + p.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    log = results["checkers"]["log"]
    assert log["valid"] in (True, False)
    assert set(log["replicas"]) == {"n1", "n2", "n3"}
    assert log["appends"]["ok"] > 50
    assert "linearizability" not in results["checkers"]
    reads = [op for op in history(run_dir) if op.get("f") == "read-replica" and op["type"] == "ok"]
    assert len(reads) == 3
