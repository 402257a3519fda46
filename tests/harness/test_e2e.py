"""Real runs of `faultline run` against a 3-node raftkv cluster on local processes.

Each test owns a store in tmp_path; every process whose command line names that store is
killed in the fixture's finalizer, so a failing test leaves nothing behind either.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.env import procs_naming

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def faultline(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def run_args(store: Path, time_limit: int, seed: int) -> list[str]:
    return faultline(
        "run", str(REPO / "configs" / "local.yaml"),
        "--time-limit", str(time_limit), "--store", str(store), "--seed", str(seed),
        "--nemesis-interval", "4", "--rate", "60",
    )  # fmt: skip


def history_lines(store: Path) -> int:
    path = store / "latest" / "history.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_short_run_is_valid_with_report_and_leaves_nothing(store: Path, tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    p = subprocess.run(
        [*run_args(store, 12, 11), "--junit", str(junit)], cwd=tmp_path, capture_output=True, text=True, timeout=150
    )
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert "verdict: valid" in p.stdout
    report = [line.split(": ", 1)[1] for line in p.stdout.splitlines() if line.startswith("report: ")]
    assert report and Path(report[0]).exists(), p.stdout
    run_dir = (store / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    assert {"linearizability", "raft-safety", "recovery"} <= set(results["checkers"])
    for node in ("n1", "n2", "n3"):
        assert (run_dir / "nodes" / node / "events.jsonl").stat().st_size > 0
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert sum(1 for op in history if op["type"] == "ok") > 100
    assert any(op["process"] == "nemesis" and op["f"].startswith("start-") for op in history)
    assert "<testsuite" in junit.read_text()
    assert procs_naming(str(store)) == []


def test_sigkilled_controller_then_analyze(store: Path, tmp_path: Path) -> None:
    ctl = subprocess.Popen(run_args(store, 40, 12), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while history_lines(store) < 300 and time.monotonic() < deadline and ctl.poll() is None:
            time.sleep(0.2)
        assert history_lines(store) >= 300, "the run never got going"
        ctl.kill()
        ctl.wait(10)
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait(10)
    # the controller died without teardown: its nodes are orphans until analyze reaps them
    assert procs_naming(str(store)) != []
    run_dir = (store / "latest").resolve()
    assert not (run_dir / "results.json").exists()
    p = subprocess.run(faultline("analyze", str(run_dir)), cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["checkers"]["linearizability"]["valid"] is True
    # node events left in the work dir were salvaged and checked
    assert results["checkers"]["raft-safety"]["valid"] is True
    assert (run_dir / "nodes" / "n1" / "events.jsonl").exists()
    time.sleep(0.5)
    assert procs_naming(str(store)) == []


def test_sigint_heals_tears_down_and_checks(store: Path, tmp_path: Path) -> None:
    ctl = subprocess.Popen(
        run_args(store, 60, 13), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while history_lines(store) < 200 and time.monotonic() < deadline and ctl.poll() is None:
            time.sleep(0.2)
        ctl.send_signal(signal.SIGINT)
        out, err = ctl.communicate(timeout=120)
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait(10)
    assert ctl.returncode == 0, out + err[-3000:]
    assert "SIGINT: stopping" in err
    assert "verdict: valid" in out
    history = [json.loads(line) for line in (store / "latest" / "history.jsonl").read_text().splitlines()]
    assert history[-1]["time"] < 50e9  # stopped well before the 60 s limit
    assert any(op["f"] == "heal" for op in history)
    assert procs_naming(str(store)) == []


def test_bad_config_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nemesis:\n  interval: abc\n")
    p = subprocess.run(faultline("run", str(bad), "--store", str(tmp_path / "s")), capture_output=True, text=True, timeout=30)
    assert p.returncode == 3
    assert p.stderr.strip() == f"faultline: {bad}: nemesis.interval: expected a number, got 'abc'"
    assert not (tmp_path / "s").exists()


def test_raftkv_under_message_loss_and_delay_stays_valid(store: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "configs" / "local-links.yaml").read_text())
    raw.update({"time_limit": 16, "warmup": 1.5})
    raw["nemesis"].update({"links": ["loss", "delay"], "interval": 3, "duration": 2.5, "link_loss": 0.3})
    cfg = tmp_path / "links.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    p = subprocess.run(
        faultline("run", str(cfg), "--store", str(store), "--seed", "21", "--rate", "60"),
        cwd=tmp_path, capture_output=True, text=True, timeout=150,
    )
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert "verdict: valid" in p.stdout
    run_dir = (store / "latest").resolve()
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    starts = [op for op in history if op["f"] == "start-link"]
    stops = [op["value"] for op in history if op["f"] == "stop-link"]
    assert {op["value"]["kind"] for op in starts} == {"loss", "delay"}
    assert all("error" not in op and op["value"]["links"] and op["value"]["unit"] == "message" for op in starts)
    # the faults did something: messages were lost and delayed on the proxies
    assert sum(v["msgs_lost"] for v in stops if v["kind"] == "loss") > 0
    assert sum(v["delayed"] for v in stops if v["kind"] == "delay") > 0
    # and the cluster made progress through them
    faulty = [(op["time"], op["time"] + 2.5e9) for op in starts]
    oks = [op for op in history if op["type"] == "ok" and op["process"] != "nemesis"]
    assert sum(1 for op in oks if any(a <= op["time"] <= b for a, b in faulty)) > 20
    assert (run_dir / "report.html").exists()
    assert procs_naming(str(store)) == []
