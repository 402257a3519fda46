"""Checks a stored run: history + node events -> results.json (+ history.edn, report.html).

Works on any run folder with a test.yaml and a history.jsonl, also one whose controller was
killed midway (a torn last line is skipped). A checker that cannot run (missing module, bad
input) yields an "unknown" entry saying why, never a made-up verdict.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import yaml

from checkers.result import UNKNOWN, CheckResult, merge_verdicts
from harness.run.history import read_history

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


def check_linearizability(test: dict[str, Any], history: list[dict[str, Any]]) -> CheckResult:
    from checkers.history import HistoryError, ops_from_records
    from checkers.linear import ModelSpecError, check, make_model
    from workloads import UnknownWorkload
    from workloads import get as get_workload

    try:
        model = make_model(get_workload(str(test.get("workload", "kv"))).model)
    except (UnknownWorkload, ModelSpecError) as e:
        return _unknown("linearizability", str(e))
    try:
        ops = ops_from_records(history)
    except HistoryError as e:
        return _unknown("linearizability", f"history.jsonl: {e}")
    timeout = float((test.get("checker") or {}).get("linearizability_timeout", 120.0))
    return check(model, ops, timeout=timeout).to_check_result("linearizability")


def check_safety(run_dir: Path) -> CheckResult:
    try:
        safety = importlib.import_module("checkers.safety")
    except ImportError as e:
        return _unknown("raft-safety", f"checkers.safety unavailable: {e}")
    try:
        result: CheckResult = safety.check_run(run_dir)
    except (ValueError, OSError, safety.EventLogError) as e:
        return _unknown("raft-safety", f"node events: {e}")
    result.name = "raft-safety"
    return result


def check_etcd_safety(run_dir: Path) -> CheckResult:
    """Raft safety of an etcd run, from the role and boot lines of the collected etcd logs."""
    try:
        safety = importlib.import_module("checkers.safety")
        etcd_log = importlib.import_module("checkers.safety.etcd_log")
    except ImportError as e:
        return _unknown("raft-safety", f"checkers.safety unavailable: {e}")
    logs = {p.parent.name: p for p in sorted((run_dir / "nodes").glob("*/etcd.log"))}
    if not logs:
        return _unknown("raft-safety", f"{run_dir / 'nodes'}: no */etcd.log collected")
    try:
        result: CheckResult = safety.check(etcd_log.read_etcd_logs(logs))
    except etcd_log.EtcdLogError as e:
        return _unknown("raft-safety", str(e))
    result.name = "raft-safety"
    return result


def check_stats(history: list[dict[str, Any]]) -> CheckResult | None:
    try:
        stats = importlib.import_module("checkers.stats")
    except ImportError as e:
        # stats describe, they do not judge: a missing module costs the report its numbers only
        log.warning("stats not computed: checkers.stats unavailable: %s", e)
        return None
    res = stats.check(history)
    if isinstance(res, CheckResult):
        res.name = "stats"
        return res
    if isinstance(res, dict):
        valid = res.get("valid", UNKNOWN)
        return CheckResult("stats", valid, {k: v for k, v in res.items() if k != "valid"})
    return _unknown("stats", f"checkers.stats.check returned {type(res).__name__}")


def salvage_node_files(run_dir: Path) -> list[str]:
    """Copy node logs and events left in the run's work dir into nodes/<node>/ where the
    controller died before collecting them (local provider); returns what was copied."""
    copied: list[str] = []
    work = run_dir / "work"
    if not work.is_dir():
        return copied
    for node_dir in sorted(p for p in work.iterdir() if p.is_dir()):
        for name in ("events.jsonl", "node.log"):
            src, dest = node_dir / name, run_dir / "nodes" / node_dir.name / name
            if src.exists() and not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
                copied.append(f"{node_dir.name}/{name}")
    if copied:
        log.info("%s: salvaged uncollected node files: %s", run_dir, ", ".join(copied))
    return copied


def analyze(run_dir: Path, write_edn: bool = True) -> dict[str, Any]:
    """Run every checker that applies to the stored run; write and return results.json."""
    test = load_test(run_dir)
    salvage_node_files(run_dir)
    history = read_history(run_dir / "history.jsonl")
    log.info("%s: checking %d history records", run_dir, len(history))
    if write_edn:
        try:
            from checkers.history import write_edn as _write_edn

            _write_edn(history, run_dir / "history.edn")
        except (ImportError, ValueError, TypeError) as e:
            log.warning("history.edn not written: %s", e)
    results: list[CheckResult] = []
    for name, fn in (
        ("linearizability", lambda: check_linearizability(test, history)),
        ("raft-safety", lambda: check_safety(run_dir) if test.get("db") == "raftkv"
         else check_etcd_safety(run_dir) if test.get("db") == "etcd" else None),
        ("stats", lambda: check_stats(history)),
    ):
        try:
            r = fn()
        except Exception as e:  # a checker crash is an unknown verdict, not a lost run
            log.exception("checker %s crashed", name)
            r = _unknown(name, f"checker crashed: {type(e).__name__}: {e}")
        if r is not None:
            results.append(r)
    rec = run_dir / RECOVERY_FILE
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
    tmp = run_dir / "results.json.tmp"
    tmp.write_text(json.dumps(out, indent=1, default=str))
    tmp.replace(run_dir / "results.json")
    return out


def render_report(run_dir: Path) -> Path | None:
    """reports.render_run if the reports package provides it; None (logged) otherwise."""
    try:
        reports = importlib.import_module("reports")
        render_run = reports.render_run
    except (ImportError, AttributeError) as e:
        log.warning("report not rendered: reports.render_run unavailable: %s", e)
        return None
    try:
        path: Path = render_run(run_dir)
    except Exception as e:  # the verdict stands without its report
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
