"""The bounded CI subset of the bug zoo, with real raftkv processes on local processes:
`stale-read` caught as a linearizability anomaly, `vote-not-durable` caught as a Raft safety
violation, and the correct build passing the very schedule of the stale-read entry.

Each run is 18 s of load (three leader partitions) (about 40 s with start-up and checking on a busy 2-core machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import procs_naming

pytestmark = pytest.mark.slow


def test_zoo_ci_subset(store: Path, tmp_path: Path) -> None:
    out_md = tmp_path / "bug-zoo.md"
    out_md.write_text("# Bug zoo\n\nhand-written prose stays\n")
    args = [
        sys.executable, "-m", "harness", "zoo",
        "--only", "stale-read,vote-not-durable,correct-raftkv-partitions",
        "--seeds", "1", "--time-limit", "18", "--store", str(store), "--out", str(out_md),
    ]  # fmt: skip
    p = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=290)
    out = p.stdout + p.stderr[-3000:]
    (results,) = sorted((store / "zoo").glob("*/zoo-results.json"))
    entries = {e["name"]: e for e in json.loads(results.read_text())["entries"]}
    stale, vote, correct = (
        entries["stale-read"],
        entries["vote-not-durable"],
        entries["correct-raftkv-partitions"],
    )
    assert stale["detected"] == stale["completed"] == 1, out
    assert "linearizability" in stale["runs"][0]["caught_by"]
    assert stale["median_detection_s"] is not None and 0 < stale["median_detection_s"] < 30
    assert vote["detected"] == vote["completed"] == 1, out
    assert "raft-safety" in vote["runs"][0]["caught_by"]
    assert {
        "raft-safety:durability",
        "raft-safety:one-vote-per-term",
        "raft-safety:election-safety",
    } & set(vote["runs"][0]["anomalies"])
    assert correct["completed"] == 1 and correct["false_positives"] == 0, out
    assert correct["runs"][0]["verdict"] == "valid"
    assert p.returncode == 0, out
    doc = out_md.read_text()
    assert doc.startswith("# Bug zoo\n\nhand-written prose stays\n")
    assert (
        "| `stale-read` |" in doc and "| 1/1 |" in doc and "| `correct-raftkv-partitions` |" in doc
    )
    assert procs_naming(str(store)) == []
