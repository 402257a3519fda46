"""Real soaks against raftkv on local processes: the anomaly path, the JUnit file, the exit
code, compaction of passing runs, and SIGTERM mid-soak.

Each test owns a store in tmp_path; every process whose command line names that store is
killed in the fixture's finalizer, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.support.env import procs_naming

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# A small correct run: 3 raftkv nodes, leader partitions, no bug.
CORRECT = """\
name: soak-correct
db: raftkv
provider: local
nodes: 3
workload: kv
workload_opts: {keys: 2}
time_limit: 15
warmup: 3
rate: 60
nemesis: {faults: [partition], interval: 5, duration: 3, partitions: [leader]}
"""


def soak_args(store: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "harness", "soak", *args, "--store", str(store)]


def the_summary(store: Path) -> dict[str, Any]:
    found = sorted((store / "soak").glob("*/soak-summary.json"))
    assert len(found) == 1, found
    summary: dict[str, Any] = json.loads(found[0].read_text())
    return summary


def test_soak_with_a_seeded_bug_reports_the_anomaly(store: Path, tmp_path: Path) -> None:
    correct = tmp_path / "correct.yaml"
    correct.write_text(CORRECT)
    junit = tmp_path / "soak.xml"
    args = soak_args(
        store, str(REPO / "configs" / "zoo" / "stale-read.yaml"), str(correct),
        "--max-runs", "2", "--time-limit", "15", "--master-seed", "5", "--junit", str(junit),
    )  # fmt: skip
    p = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    out = p.stdout + p.stderr[-3000:]
    assert p.returncode == 1, out
    assert "soak: master seed 5" in p.stdout
    data = the_summary(store)
    assert data["totals"] == {
        "runs": 2,
        "valid": 1,
        "anomalies": 1,
        "unknown": 0,
        "infra": 0,
        "retried": 0,
    }, out
    assert data["anomalies_by_kind"] == {"linearizability": 1}
    assert data["stopped_by"] == "max-runs" and data["exit_code"] == 1
    bug_run, ok_run = data["runs"]
    assert bug_run["test"] == "zoo-stale-read" and bug_run["verdict"] == "anomaly"
    assert ok_run["test"] == "soak-correct" and ok_run["verdict"] == "valid"
    assert bug_run["throughput"] > 0 and ok_run["throughput"] > 0
    # the failing run is kept whole, the passing one as a compact summary
    assert (Path(bug_run["run_dir"]) / "history.jsonl").exists()
    assert (Path(bug_run["run_dir"]) / "nodes" / "n1" / "events.jsonl").exists()
    assert ok_run["kept"] == "compact"
    kept = {p.name for p in Path(ok_run["run_dir"]).iterdir()}
    assert (
        {"test.yaml", "results.json"}
        <= kept
        <= {"test.yaml", "results.json", "report.html", "recovery.json"}
    )
    # seeds come from the master seed, so the whole soak can be replayed
    from harness.campaign.soak_policy import run_seed

    assert [bug_run["seed"], ok_run["seed"]] == [run_seed(5, 0), run_seed(5, 1)]
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    assert (store / "index.html").exists()
    assert procs_naming(str(store)) == []


def test_sigterm_mid_soak_finishes_the_run_and_writes_the_summary(
    store: Path, tmp_path: Path
) -> None:
    correct = tmp_path / "correct.yaml"
    correct.write_text(CORRECT)
    junit = tmp_path / "soak.xml"
    args = soak_args(
        store,
        str(correct),
        "--max-runs",
        "3",
        "--time-limit",
        "40",
        "--keep",
        "all",
        "--junit",
        str(junit),
    )
    soak = subprocess.Popen(
        args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 90
        history = store / "latest" / "history.jsonl"
        while time.monotonic() < deadline and soak.poll() is None:
            if history.exists() and len(history.read_text().splitlines()) >= 150:
                break
            time.sleep(0.3)
        assert soak.poll() is None, "the soak ended before it was signalled"
        soak.send_signal(signal.SIGTERM)
        out, err = soak.communicate(timeout=150)
    finally:
        if soak.poll() is None:
            soak.kill()
            soak.wait(10)
    assert soak.returncode == 0, out + err[-3000:]
    assert "SIGTERM: finishing the current run" in err
    data = the_summary(store)
    assert data["stopped_by"] == "signal"
    assert data["totals"]["runs"] == 1 and data["totals"]["valid"] == 1, out
    (run,) = data["runs"]
    assert run["interrupted"] is True
    # the run stopped early, and was healed and checked
    run_dir = Path(run["run_dir"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["checkers"]["linearizability"]["valid"] is True
    ops = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert ops[-1]["time"] < 35e9  # well before the 40 s limit
    assert any(op["f"] == "heal" for op in ops)
    assert ET.parse(junit).getroot().get("tests") == "1"
    assert procs_naming(str(store)) == []
