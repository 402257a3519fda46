"""A JUnit XML summary of runs, for CI systems: one testsuite, one testcase per checker."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from checkers.results import Results


def write_junit(path: Path, name: str, runs: Sequence[tuple[Path, Results | None, str | None]]) -> None:
    """`runs`: (run folder, its results or None, failure of the run or None)."""
    suite = ET.Element("testsuite", name=name)
    tests = failures = errors = skipped = 0
    for run_dir, results, failure in runs:
        cls = f"{name}.{run_dir.name}"
        if failure is not None:
            case = ET.SubElement(suite, "testcase", classname=cls, name="run")
            ET.SubElement(case, "error", message=failure).text = f"run folder: {run_dir}"
            tests += 1
            errors += 1
        for res in results.checkers.values() if results is not None else ():
            tests += 1
            case = ET.SubElement(suite, "testcase", classname=cls, name=res.name)
            said = res.message()
            if res.valid is False:
                failures += 1
                msg = said or "invalid"
                ET.SubElement(case, "failure", message=msg).text = f"{msg}\nrun folder: {run_dir}"
            elif res.valid is not True:
                skipped += 1
                ET.SubElement(case, "skipped", message=f"unknown: {said}" if said else "unknown")
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
