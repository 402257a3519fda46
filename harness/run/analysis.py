"""Checks a stored run: history + node events -> results.json (+ history.edn, report.html).

Which checkers judge a run is its DB adapter's answer (`DB.checkers`), asked again from the
saved test.yaml. Works on any run folder with a test.yaml and a history.jsonl, also one whose
controller was killed midway (a torn last line is skipped). A checker that cannot run (bad
input, a crash) yields an "unknown" entry saying why, never a made-up verdict.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

import reports
from checkers.edn_export import export_edn
from checkers.history import HistoryError
from checkers.history import write_edn as write_edn_file
from checkers.result import UNKNOWN, CheckResult, merge_verdicts
from checkers.results import RESULTS_FILE, Results
from checkers.rundata import StoredRun
from checkers.stats import StatsChecker
from harness import db as dbs
from harness.protocols import Checker, HarnessError
from workloads import checkers_for

log = logging.getLogger(__name__)

RECOVERY_FILE = "recovery.json"


def load_test(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "test.yaml"
    try:
        test = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read the test's config: {e}") from None
    if not isinstance(test, dict):
        raise ValueError(f"{path}: not a mapping")
    return test


def _unknown(name: str, why: str) -> CheckResult:
    log.warning("%s: %s", name, why)
    return CheckResult(name, UNKNOWN, {"error": why})


def run_checkers(test: Mapping[str, Any]) -> tuple[list[Checker], list[CheckResult]]:
    """The checkers that judge this run, as its DB adapter names them, plus stats. A plug-in
    that cannot be loaded any more still gets the workload's checkers, and an "unknown"
    entry saying why its own were not run."""
    found: list[Checker] = []
    missing: list[CheckResult] = []
    try:
        found = list(dbs.create(test).checkers(test))
    except HarnessError as e:
        found = list(checkers_for(test))
        missing.append(_unknown("db-checkers", f"{e}: the DB's own checkers were not run"))
    return [*found, StatsChecker()], missing


def salvage_node_files(run_dir: Path) -> list[str]:
    """Copy node logs and events left in the run's work dir into nodes/<node>/ where the
    controller died before collecting them (local provider); returns what was copied."""
    copied: list[str] = []
    work = run_dir / "work"
    if not work.is_dir():
        return copied
    for node_dir in sorted(p for p in work.iterdir() if p.is_dir()):
        for name, at in (("events.jsonl", "events.jsonl"), ("node.log", "node.log"), ("nats.log", "nats/nats.log")):
            src, dest = node_dir / at, run_dir / "nodes" / node_dir.name / name
            if src.exists() and not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
                copied.append(f"{node_dir.name}/{name}")
    if copied:
        log.info("%s: salvaged uncollected node files: %s", run_dir, ", ".join(copied))
    return copied


def analyze(run_dir: Path, write_edn: bool = True) -> Results:
    """Run every checker that judges the stored run; write results.json and return it."""
    test = load_test(run_dir)
    salvage_node_files(run_dir)
    run = StoredRun(run_dir, test)
    if write_edn:
        try:
            # from the file, a long one by a process per core: its records are never all held
            n = 0
            if run.history_path.exists():
                n = export_edn(run.history_path, run_dir / "history.edn")
            else:
                write_edn_file([], run_dir / "history.edn")
            log.info("%s: %d history records", run_dir, n)
        except (HistoryError, ValueError, TypeError) as e:
            log.warning("history.edn not written: %s", e)
    rec = run_dir / RECOVERY_FILE
    judged_as = test
    if test.get("final_reads", True) and not rec.exists():
        # it ended (interrupted, or its controller died) before the recovery check and the
        # final reads that follow it: judged as the run without final reads it is
        log.info("%s: the run ended before its final reads: lost writes are not judged", run_dir)
        judged_as = {**test, "final_reads": False}
    checkers, results = run_checkers(judged_as)
    for checker in checkers:
        try:
            results.append(checker.check(run))
        except Exception as e:  # a checker crash is an unknown verdict, not a lost run
            log.exception("checker %s crashed", checker.name)
            results.append(_unknown(checker.name, f"checker crashed: {type(e).__name__}: {e}"))
    if rec.exists():
        try:
            d = json.loads(rec.read_text())
            results.append(CheckResult("recovery", d.pop("valid"), d))
        except (ValueError, KeyError) as e:
            results.append(_unknown("recovery", f"{rec}: {e}"))
    out = {
        "valid": merge_verdicts([r.valid for r in results]),
        "checkers": {r.name: r.to_json() for r in results},
    }
    tmp = run_dir / f"{RESULTS_FILE}.tmp"
    tmp.write_text(json.dumps(out, indent=1, default=str))
    tmp.replace(run_dir / RESULTS_FILE)
    return Results.of(out)


def render_report(run_dir: Path) -> Path | None:
    """The run's report.html and the store's index; None (logged) if rendering failed, since
    the verdict stands without its report."""
    try:
        path: Path = reports.render_run(run_dir)
    except Exception as e:
        log.exception("report rendering failed")
        log.warning("report not rendered: %s: %s", type(e).__name__, e)
        return None
    try:
        reports.render_index(run_dir.parent.parent)
    except Exception as e:
        log.warning("store index not rendered: %s", e)
    return path


def exit_code(valid: Any) -> int:
    """0 valid, 1 anomaly, 2 unknown."""
    if valid is True:
        return 0
    if valid is False:
        return 1
    return 2
