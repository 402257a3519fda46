"""JUnit XML summary: one testcase per checker; anomalies are failures, unknowns skipped,
a failed run an error."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from checkers.results import Results
from harness.campaign.junit import write_junit
from harness.run.analysis import exit_code


def test_junit_counts_and_messages(tmp_path: Path) -> None:
    results = Results.of({
        "valid": False,
        "checkers": {
            "linearizability": {"valid": False, "counterexample": {"message": "read 3 after write 4"}},
            "raft-safety": {"valid": True},
            "stats": {"valid": "unknown", "error": "gave up"},
        },
    })
    out = tmp_path / "j.xml"
    write_junit(out, "t", [(tmp_path / "run1", results, None), (tmp_path / "run2", None, "no leader elected")])
    suite = ET.parse(out).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("4", "1", "1", "1")
    failure = suite.find("testcase[@name='linearizability']/failure")
    assert failure is not None and failure.get("message") == "read 3 after write 4"
    error = suite.find("testcase[@name='run']/error")
    assert error is not None and error.get("message") == "no leader elected"


def test_exit_codes() -> None:
    assert [exit_code(True), exit_code(False), exit_code("unknown")] == [0, 1, 2]
