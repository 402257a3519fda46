"""The soak summary, its JSON and text, the JUnit file, and findings read from results.json."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.campaign import findings
from harness.campaign.run import parse_child_output
from harness.campaign.soak_summary import SoakRun, SoakSummary, write_junit
from harness.campaign.soak_trend import render as render_trend

LIN_INVALID = {
    "valid": False,
    "counterexample": {
        "key": "k0",
        "ops": [
            {"id": 1, "invoke": 1_000_000_000, "complete": 2_000_000_000},
            {"id": 2, "invoke": 3_000_000_000, "complete": 4_500_000_000},
        ],
        "unplaceable": [2],
        "message": "read() -> 3 cannot be linearized",
    },
}
SAFETY_INVALID = {
    "valid": False,
    "violations": [
        {"kind": "durability", "message": "n2 lost its vote", "ts": 1000.0 + 12.5},
        {"kind": "one-vote-per-term", "message": "n2 voted twice", "ts": 1000.0 + 14.0},
    ],
}
STATS = {"valid": True, "throughput": 61.5}


def results(**checkers: Any) -> dict[str, Any]:
    valid = [c["valid"] for c in checkers.values()]
    overall = (
        False if False in valid else ("unknown" if any(v is not True for v in valid) else True)
    )
    return {"valid": overall, "checkers": {k.replace("_", "-"): v for k, v in checkers.items()}}


def test_findings_of_an_invalid_run() -> None:
    r = results(linearizability=LIN_INVALID, raft_safety=SAFETY_INVALID, stats=STATS)
    assert findings.anomaly_kinds(r) == [
        "linearizability",
        "raft-safety:durability",
        "raft-safety:one-vote-per-term",
    ]
    assert findings.caught_by(r) == ["linearizability", "raft-safety"]
    assert findings.throughput(r) == 61.5
    # the unplaceable op completed 4.5 s into the load; the first violation 12.5 s after boot
    assert findings.linearizability_detection_s(LIN_INVALID) == 4.5
    assert findings.safety_detection_s(SAFETY_INVALID, 1000.0) == 12.5
    assert findings.detection_s(r, 1000.0) == 4.5
    assert findings.detection_s(results(raft_safety=SAFETY_INVALID), None) is None
    assert findings.message(r) == "linearizability: read() -> 3 cannot be linearized"


def test_findings_of_valid_and_unknown_runs() -> None:
    ok = results(linearizability={"valid": True}, stats=STATS)
    assert findings.anomaly_kinds(ok) == [] and findings.caught_by(ok) == []
    assert findings.message(ok) == "valid"
    unk = results(linearizability={"valid": "unknown", "error": "timed out after 120s"})
    assert findings.unknown_checkers(unk) == ["linearizability"]
    assert findings.message(unk) == "linearizability: timed out after 120s"
    assert findings.anomaly_kinds(None) == [] and findings.throughput(None) is None


def test_first_boot_ts(tmp_path: Path) -> None:
    for node, ts in (("n1", 105.0), ("n2", 100.5)):
        d = tmp_path / "nodes" / node
        d.mkdir(parents=True)
        lines = [
            {"type": "boot", "ts": ts, "boot": 1},
            {"type": "role", "ts": ts + 1},
            {"type": "boot", "ts": 1.0},
        ]
        (d / "events.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{torn")
    assert findings.first_boot_ts(tmp_path) == 100.5
    assert findings.first_boot_ts(tmp_path / "missing") is None


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
