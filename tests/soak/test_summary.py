"""The soak summary, its JSON and text, the JUnit file, and the results read back from a run."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.campaign.run import parse_child_output, read_results
from harness.campaign.soak_summary import SoakRun, SoakSummary, write_junit
from harness.campaign.soak_trend import render as render_trend


def test_read_results_of_a_run_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert read_results(None) is None
    assert read_results(tmp_path) is None and "results.json: missing" in caplog.text
    (tmp_path / "results.json").write_text("{torn")
    assert read_results(tmp_path) is None and "not valid JSON" in caplog.text
    doc = {"valid": False, "checkers": {"raft-safety": {"valid": False, "violations": [{"kind": "durability"}]}}}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    results = read_results(tmp_path)
    assert results is not None and results.anomaly_kinds() == ["raft-safety:durability"]


def test_parse_child_output() -> None:
    out = "  linearizability  INVALID\nverdict: INVALID\nrun folder: /s/t/r1\nreport: /s/t/r1/report.html\n"
    assert parse_child_output(out) == (Path("/s/t/r1"), None)
    out = "run failed: local provider: port in use\nverdict: RUN FAILED\nrun folder: /s/t/r2\n"
    assert parse_child_output(out) == (Path("/s/t/r2"), "local provider: port in use")
    assert parse_child_output("") == (None, None)


def soak_run(index: int, verdict: str, **kw: Any) -> SoakRun:
    base: dict[str, Any] = {
        "index": index,
        "config": "configs/local.yaml",
        "test": "raftkv-local",
        "seed": 100 + index,
        "mix": None,
        "verdict": verdict,
        "exit_code": {"valid": 0, "anomaly": 1, "unknown": 2, "infra": 3}[verdict],
        "run_dir": f"/s/raftkv-local/r{index}",
        "started": 1000.0 + index,
        "elapsed_s": 30.0,
    }
    base.update(kw)
    return SoakRun(**base)


def summary(*runs: SoakRun) -> SoakSummary:
    s = SoakSummary(
        7, ["configs/local.yaml"], [["partition"]], "passing", 3600.0, None, "/s", started=1000.0
    )
    s.runs = list(runs)
    s.finished = 1100.0
    s.stopped_by = "duration"
    return s


@pytest.mark.parametrize(
    ("verdicts", "code"),
    [
        (["valid", "valid"], 0),
        (["valid", "anomaly", "infra"], 1),
        (["unknown", "infra"], 2),
        (["valid", "infra"], 3),
    ],
)
def test_summary_exit_code(verdicts: list[str], code: int) -> None:
    assert summary(*(soak_run(i, v) for i, v in enumerate(verdicts))).exit_code() == code


def test_summary_json_and_text(tmp_path: Path) -> None:
    s = summary(
        soak_run(0, "valid", throughput=50.0),
        soak_run(
            1,
            "anomaly",
            anomalies=["linearizability"],
            message="linearizability: stale read",
            throughput=70.0,
        ),
        soak_run(2, "anomaly", anomalies=["linearizability", "raft-safety:durability"]),
        soak_run(3, "infra", message="local provider: no port", retried=True),
        soak_run(4, "unknown", unknown=["linearizability"]),
    )
    path = tmp_path / "soak" / "soak-summary.json"
    s.write(path)
    data = json.loads(path.read_text())
    assert data["totals"] == {
        "runs": 5,
        "valid": 1,
        "anomalies": 2,
        "unknown": 1,
        "infra": 1,
        "retried": 1,
    }
    assert data["anomalies_by_kind"] == {"linearizability": 2, "raft-safety:durability": 1}
    assert data["throughput"] == {"min": 50.0, "median": 60.0, "max": 70.0}
    assert data["exit_code"] == 1 and data["master_seed"] == 7
    assert "--master-seed 7" in data["replay"] and "--mix partition" in data["replay"]
    assert [r["verdict"] for r in data["runs"]] == [
        "valid",
        "anomaly",
        "anomaly",
        "infra",
        "unknown",
    ]
    text = s.text()
    assert "anomalies 2" in text and "infrastructure errors 1" in text
    assert "run 1 [anomaly] seed 101 raftkv-local: linearizability: stale read" in text
    assert "run 0 [" not in text  # passing runs are counted, not listed


def test_junit_one_case_per_run(tmp_path: Path) -> None:
    s = summary(
        soak_run(0, "valid"),
        soak_run(1, "anomaly", anomalies=["linearizability"], message="stale read"),
        soak_run(2, "infra", message="port in use"),
        soak_run(3, "unknown", message="checker timed out"),
    )
    path = tmp_path / "junit.xml"
    write_junit(s, path)
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite"
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == ("4", "1", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [f"run-000{i}-seed-10{i}" for i in range(4)]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    fail = cases[1].find("failure")
    assert (
        fail is not None
        and fail.get("message") == "stale read"
        and fail.get("type") == "linearizability"
    )
    err = cases[2].find("error")
    assert err is not None and err.get("type") == "infrastructure"
    assert cases[3].find("skipped") is not None


def test_trend_page(tmp_path: Path) -> None:
    run_dir = tmp_path / "store" / "t" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "report.html").write_text("<html></html>")
    s = summary(
        soak_run(0, "valid", throughput=50.0, kept="compact", run_dir=str(run_dir)),
        soak_run(
            1, "anomaly", anomalies=["linearizability"], message="stale <read>", throughput=70.0
        ),
        soak_run(2, "infra", message="port in use", kept="removed"),
    )
    page_dir = tmp_path / "store" / "soak" / "x"
    page_dir.mkdir(parents=True)
    page = render_trend(s, page_dir / "soak.html")
    html = page.read_text()
    assert html.count("<circle") == 3 and "#d73027" in html and "#6a3d9a" in html
    assert html.count("<polyline") == 1  # throughput of the runs that measured it
    assert 'href="../../t/r1/report.html"' in html
    assert "stale &lt;read&gt;" in html and "--master-seed 7" in html
