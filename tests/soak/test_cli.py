"""The soak command without a cluster: bad options refused up front, the time budget, and a
run that fails for infrastructure reasons retried once and reported apart from anomalies."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.campaign import soak
from harness.campaign.soak_summary import SoakRun

REPO = Path(__file__).resolve().parents[2]


def make_soak(tmp_path: Path, *args: str) -> soak.Soak:
    ns = soak._parser("soak").parse_args(
        [str(REPO / "configs" / "local.yaml"), "--store", str(tmp_path), *args]
    )
    return soak.Soak(ns, threading.Event())


def fake_run(index: int, elapsed: float) -> SoakRun:
    return SoakRun(index, "c.yaml", "t", index, None, "valid", 0, None, 0.0, elapsed)


def test_time_budget_does_not_start_a_run_that_would_overrun(tmp_path: Path) -> None:
    s = make_soak(tmp_path, "--duration", "10m", "--master-seed", "3")
    assert s._why_stop(0, 0.0) is None  # the first run always starts
    s.summary.runs = [fake_run(0, 200.0), fake_run(1, 100.0)]  # mean 150 s
    assert s._why_stop(2, 440.0) is None
    assert s._why_stop(2, 460.0) == "duration"
    s.stop.set()
    assert s._why_stop(2, 0.0) == "signal"


def test_max_runs(tmp_path: Path) -> None:
    s = make_soak(tmp_path, "--max-runs", "2")
    assert s._why_stop(1, 0.0) is None and s._why_stop(2, 0.0) == "max-runs"
    assert 1 <= s.master_seed < 2**31  # random, and printed by main()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "8 hours"], "--duration: expected"),
        (["--mix", "partition,flood"], "nemesis.faults: item 1: expected one of"),
        (["--max-runs", "0"], "--max-runs: must be >= 1"),
    ],
)
def test_bad_options_are_refused_before_any_run(
    tmp_path: Path, args: list[str], message: str
) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "harness", "soak", "--store", str(tmp_path / "s"), *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 3
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_infrastructure_failure_is_retried_once_and_reported_apart(tmp_path: Path) -> None:
    # a controller host address this machine does not have: the provider's set-up fails, the
    # way a broken host would, before any client op
    cfg = tmp_path / "unreachable-host.yaml"
    cfg.write_text(
        "name: broken\nprovider_opts: {host: 192.0.2.1}\nnodes: 3\ntime_limit: 5\nwarmup: 1\n"
    )
    junit = tmp_path / "soak.xml"
    store = tmp_path / "store"
    p = subprocess.run(
        [sys.executable, "-m", "harness", "soak", str(cfg), "--max-runs", "1", "--store", str(store),
         "--junit", str(junit)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 3, p.stdout + p.stderr[-2000:]
    (path,) = (store / "soak").glob("*/soak-summary.json")
    data = json.loads(path.read_text())
    assert data["totals"] == {
        "runs": 1,
        "valid": 0,
        "anomalies": 0,
        "unknown": 0,
        "infra": 1,
        "retried": 1,
    }
    (run,) = data["runs"]
    assert run["verdict"] == "infra" and run["retried"] is True
    assert "Cannot assign requested address" in run["message"]
    assert "Cannot assign requested address" in run["first_attempt"]["failure"]
    assert run["first_attempt"]["run_dir"] != run["run_dir"]  # both attempts kept
    assert data["anomalies_by_kind"] == {}
    err = ET.parse(junit).getroot().find("testcase/error")
    assert err is not None and err.get("type") == "infrastructure"


def test_latest_is_relinked_when_its_run_was_removed(tmp_path: Path) -> None:
    s = make_soak(tmp_path)
    for name in ("20260101T000001-1", "20260101T000002-2"):
        (tmp_path / "t" / name).mkdir(parents=True)
        (tmp_path / "t" / name / "test.yaml").write_text("name: t\n")
    (tmp_path / "latest").symlink_to("t/20260101T000003-3")  # removed by --keep failing
    s._relink_latest()
    assert (tmp_path / "latest").resolve() == (tmp_path / "t" / "20260101T000002-2").resolve()
    assert [r.path.name for r in soak.stored_runs(tmp_path)] == [
        "20260101T000001-1",
        "20260101T000002-2",
    ]
