"""The log workload on etcd: appends are keys under one prefix, and each member's copy is a
serializable range read from its own state, ordered by create revision."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.run import config
from harness.run.config import ConfigError
from tests.support.env import REPO, procs_naming, require_binary

pytestmark = pytest.mark.slow


def test_etcd_log_run_reads_every_member(store: Path, tmp_path: Path) -> None:
    require_binary("etcd", "etcdctl")
    cfg = {"extends": str(REPO / "configs" / "etcd-local.yaml"), "workload": "log", "time_limit": 12, "warmup": 2,
           "rate": 40, "recovery_timeout": 15, "nemesis": {"faults": ["partition", "kill"], "interval": 4, "duration": 3}}
    path = tmp_path / "etcd-log.yaml"
    path.write_text(yaml.safe_dump(cfg))
    argv = [sys.executable, "-m", "harness", "run", str(path), "--store", str(store), "--seed", "4"]
    p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode in (0, 1), p.stdout + p.stderr[-3000:]
    run_dir = (store / "latest").resolve()
    log = json.loads((run_dir / "results.json").read_text())["checkers"]["log"]
    assert log["valid"] in (True, False)
    assert set(log["replicas"]) == {"n1", "n2", "n3"}
    assert log["appends"]["ok"] > 50
    assert procs_naming(str(store)) == []


def test_log_workload_is_refused_where_replicas_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"db": "raftkv", "workload": "log"}))
    with pytest.raises(ConfigError, match=r"r.yaml: workload: log needs a DB that reads each replica's own copy "
                                          r"of the log \(ReplicaCopies\), which db raftkv lacks"):
        config.load(path)
