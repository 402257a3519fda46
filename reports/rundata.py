"""Reads whatever a run folder holds, tolerating missing and half-written files.

A report is most needed when a run went wrong, so nothing here raises on a missing or
truncated file: each gap is recorded in `RunData.missing` / `RunData.problems` and shown.
The history, node events and results are read by the run data library (`checkers.rundata`,
`checkers.results`) in its tolerant mode.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from checkers.history import Record
from checkers.results import RESULTS_FILE, Results, ResultsError
from checkers.rundata import HISTORY_FILE, read_records

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """Everything recorded in one run folder that a report draws."""

    run_dir: Path
    test: dict[str, Any] = field(default_factory=dict)
    history: list[Record] = field(default_factory=list)
    results: Results | None = None
    #: node name -> its events (all types) in file order
    events: dict[str, list[Record]] = field(default_factory=dict)
    #: relative paths (from run_dir) of files a reader may want to open
    files: list[str] = field(default_factory=list)
    #: names of expected inputs that are absent
    missing: list[str] = field(default_factory=list)
    #: one-line descriptions of inputs that exist but could not be fully read
    problems: list[str] = field(default_factory=list)


def read_yaml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        problems.append(f"{path.name}: not valid YAML ({str(exc).splitlines()[0]})")
        return {}
    if not isinstance(obj, dict):
        problems.append(f"{path.name}: top level is not a mapping")
        return {}
    return obj


def read_json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        problems.append(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{path.name}: top level is not an object")
        return None
    return obj


def read_results(run_dir: Path, problems: list[str]) -> Results | None:
    """The run's results.json; None when absent, or noted in `problems` when unreadable."""
    if not (run_dir / RESULTS_FILE).is_file():
        return None
    try:
        return Results.load(run_dir / RESULTS_FILE)
    except ResultsError as e:
        problems.append(f"{RESULTS_FILE}: {e.reason}")
        return None


def load_run(run_dir: Path) -> RunData:
    """Read test.yaml, history.jsonl, results.json and nodes/*/events.jsonl, as far as present."""
    run = RunData(run_dir=run_dir)
    test_path = run_dir / "test.yaml"
    if test_path.is_file():
        run.test = read_yaml(test_path, run.problems)
    else:
        run.missing.append("test.yaml")
    hist_path = run_dir / HISTORY_FILE
    if hist_path.is_file():
        run.history = read_records(hist_path, tolerant=True, problems=run.problems)
    else:
        run.missing.append(HISTORY_FILE)
    run.results = read_results(run_dir, run.problems)
    if run.results is None and not (run_dir / RESULTS_FILE).is_file():
        run.missing.append(RESULTS_FILE)
    nodes_dir = run_dir / "nodes"
    if nodes_dir.is_dir():
        for node_dir in sorted(p for p in nodes_dir.iterdir() if p.is_dir()):
            ev = node_dir / "events.jsonl"
            if ev.is_file():
                run.events[node_dir.name] = read_records(ev, tolerant=True, problems=run.problems)
    else:
        run.missing.append("nodes/")
    run.files = _listed_files(run_dir)
    return run


def _listed_files(run_dir: Path) -> list[str]:
    """Relative paths of the run's artefacts worth linking (logs, events, histories)."""
    names = ["test.yaml", "history.jsonl", "history.edn", "results.json", "controller.log"]
    out = [n for n in names if (run_dir / n).is_file()]
    nodes_dir = run_dir / "nodes"
    if nodes_dir.is_dir():
        for p in sorted(nodes_dir.rglob("*")):
            if p.is_file() and not p.is_symlink():
                out.append(p.relative_to(run_dir).as_posix())
    return out
