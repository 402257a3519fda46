"""Real runs with the data dirs on faultfs (root, FUSE): correct raftkv under coordinated
power losses and a corrupted minority stays valid, the corrupted node refuses its data with a
reason the events keep, and nothing stays mounted. The bug switches' detection is the zoo's
(configs/zoo/ack-before-fsync.yaml and its neighbours)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from faultfs.cli import mounted
from tests.support.env import procs_naming, require_binary
from tests.support.faultfs_mount import require_fuse

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.root]


def _config(tmp_path: Path, store: Path, provider: str = "local") -> Path:
    cfg = {
        "name": "disk-e2e", "db": "raftkv", "provider": provider, "nodes": 3,
        "workload": "kv", "workload_opts": {"keys": 2, "ops_per_key": 40},
        "time_limit": 14, "warmup": 2, "rate": 60, "store": str(store),
        "nemesis": {"faults": ["lose-unsynced", "corrupt"], "schedule": "mix", "interval": 3,
                    "duration": 1.5, "power_losses": ["all"], "corruptions": ["bitflip"],
                    "corrupt_files": ["wal"]},
    }  # fmt: skip
    path = tmp_path / "disk.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("provider", ["local", "netns"])
def test_power_losses_and_a_corrupted_minority_stay_valid(store: Path, tmp_path: Path, provider: str) -> None:
    """On netns the mounts are made in the host's mount namespace and reach the nodes in
    theirs: the corrupt fault, listing the mount, finds the WAL the node wrote there."""
    require_fuse()
    if provider == "netns":
        require_binary("ip", "iptables")
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(_config(tmp_path, store, provider)), "--seed", "3"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=240)
    run_dir = (store / "latest").resolve()
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())["checkers"]
    assert results["lost-writes"]["valid"] is True and results["lost-writes"]["stats"]["keys_judged"] >= 2
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    losses = [op["value"] for op in history if op.get("f") == "start-lose-unsynced" and "error" not in op]
    corrupted = [op["value"] for op in history if op.get("f") == "start-corrupt" and "error" not in op]
    assert losses and all(set(v["lost"]) == {"n1", "n2", "n3"} for v in losses)
    assert corrupted and len({v["node"] for v in corrupted}) == 1  # a minority of 3: one node
    victim = corrupted[0]["node"]
    refusals = results["raft-safety"]["stats"]["refusals"]
    assert refusals and all(r["node"] == victim and r["excused"] for r in refusals)
    assert "wal corrupt" in refusals[0]["reason"]
    events = (run_dir / "nodes" / victim / "events.jsonl").read_text().splitlines()
    assert any(json.loads(line)["type"] == "refuse" for line in events)
    # torn down: no faultfs left, nothing mounted, the work dir gone
    assert procs_naming(str(store)) == []
    assert not (run_dir / "work").exists()
    assert not any(mounted(run_dir / "work" / n / "disk") for n in ("n1", "n2", "n3"))
