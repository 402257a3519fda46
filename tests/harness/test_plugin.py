"""An out-of-tree plug-in runs end to end: docs/examples/toykv (a one-process key-value store
and its adapter) copied outside the repository, put on PYTHONPATH and named in a config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.env import REPO

EXAMPLE = REPO / "docs" / "examples" / "toykv"

pytestmark = pytest.mark.slow


def config(tmp_path: Path, durable: bool, faults: list[str]) -> Path:
    raw = {
        "name": "toykv",
        "db": "toykv_plugin",
        "nodes": 1,
        "workload": "kv",
        # no deletes: a key read as missing after an acknowledged write is then certainly lost
        "workload_opts": {"keys": 2, "ops_per_key": 100_000, "read": 0.5, "write": 0.4, "cas": 0.1, "delete": 0},
        "time_limit": 12,
        "warmup": 2,
        "concurrency": 4,
        "rate": 100,
        "nemesis": {"faults": faults, "kills": ["one"], "interval": 3, "duration": 1},
        "db_opts": {"durable": durable},
    }
    path = tmp_path / "toykv.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(tmp_path: Path, cfg: Path, store: Path) -> subprocess.CompletedProcess[str]:
    plugins = tmp_path / "plugins"  # outside the repository
    if not plugins.exists():
        shutil.copytree(EXAMPLE, plugins)
    env = {**os.environ, "PYTHONPATH": str(plugins)}
    return subprocess.run(
        [sys.executable, "-m", "harness", "run", str(cfg), "--store", str(store), "--seed", "5"],
        capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path,
    )


def results(store: Path) -> dict:
    return json.loads((store / "latest" / "results.json").read_text())


def test_durable_toykv_under_kills_is_valid(tmp_path: Path, store: Path) -> None:
    p = run(tmp_path, config(tmp_path, durable=True, faults=["kill"]), store)
    assert p.returncode == 0, p.stderr[-3000:]
    res = results(store)
    assert set(res["checkers"]) == {"linearizability", "lost-writes", "stats", "recovery"}
    assert res["checkers"]["lost-writes"]["valid"] is True
    assert res["checkers"]["stats"]["nemesis"].get("start-kill", 0) >= 2


def test_memory_only_toykv_loses_acknowledged_writes(tmp_path: Path, store: Path) -> None:
    p = run(tmp_path, config(tmp_path, durable=False, faults=["kill"]), store)
    assert p.returncode == 1, p.stderr[-3000:]
    assert results(store)["checkers"]["linearizability"]["valid"] is False


def test_a_fault_the_plugin_cannot_do_is_refused_in_one_line(tmp_path: Path, store: Path) -> None:
    p = run(tmp_path, config(tmp_path, durable=True, faults=["pause"]), store)
    assert p.returncode == 3
    lines = [line for line in p.stderr.splitlines() if "cannot be made real" in line]
    assert len(lines) == 1, p.stderr
    assert "pause cannot be made real for db toykv_plugin on the local provider: db toykv lacks Pause" in lines[0]
    assert not store.exists() or not any(store.iterdir()), "refused before any run folder"
