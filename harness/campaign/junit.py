"""A JUnit XML summary of runs, for CI systems: one testsuite, one testcase per checker."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def write_junit(path: Path, name: str, runs: Sequence[tuple[Path, dict[str, Any] | None, str | None]]) -> None:
    """`runs`: (run folder, results.json or None, failure of the run or None)."""
    suite = ET.Element("testsuite", name=name)
    tests = failures = errors = skipped = 0
    for run_dir, results, failure in runs:
        cls = f"{name}.{run_dir.name}"
        if failure is not None:
            case = ET.SubElement(suite, "testcase", classname=cls, name="run")
            ET.SubElement(case, "error", message=failure).text = f"run folder: {run_dir}"
            tests += 1
            errors += 1
        for checker, res in ((results or {}).get("checkers") or {}).items():
            tests += 1
            case = ET.SubElement(suite, "testcase", classname=cls, name=checker)
            valid = res.get("valid")
            if valid is False:
                failures += 1
                msg = _message(res)
                ET.SubElement(case, "failure", message=msg).text = f"{msg}\nrun folder: {run_dir}"
            elif valid is not True:
                skipped += 1
                ET.SubElement(case, "skipped", message=f"unknown: {_message(res)}")
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _message(res: dict[str, Any]) -> str:
    for key in ("message", "error"):
        if isinstance(res.get(key), str):
            return str(res[key])
    cx = res.get("counterexample")
    if isinstance(cx, dict) and cx.get("message"):
        return str(cx["message"])
    viol = res.get("violations")
    if isinstance(viol, list) and viol:
        return str(viol[0].get("message", "violation"))
    return "not valid"
