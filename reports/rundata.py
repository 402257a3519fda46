"""Reads whatever a run folder holds, tolerating missing and half-written files.

A report is most needed when a run went wrong, so nothing here raises on a missing or
truncated file: each gap is recorded in `RunData.missing` / `RunData.problems` and shown.
The history, node events and results are read by the run data library (`checkers.rundata`,
`checkers.results`) in its tolerant mode.

A long run's history is never held as one Python object per record: its client operations
are read as columns (`checkers.opcolumns`), only the nemesis records as dicts; the report
parses again the operations it draws. Node events are read without their bulk of applies and
commits (`reports.events`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from checkers.history import Record
from checkers.jsonl_blocks import HistoryReadError, Unusual
from checkers.opcolumns import OpColumns, RecordColumns, pair_columns, read_op_columns
from checkers.results import RESULTS_FILE, Results, ResultsError
from checkers.rundata import HISTORY_FILE, read_records, torn_note
from reports.events import read_node_events

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """Everything recorded in one run folder that a report draws."""

    run_dir: Path
    test: dict[str, Any] = field(default_factory=dict)
    #: the client operations of history.jsonl, paired, as columns
    ops: OpColumns = field(default_factory=lambda: pair_columns(RecordColumns.of_records([])))
    #: the nemesis records of history.jsonl, in file order
    nemesis: list[Record] = field(default_factory=list)
    results: Results | None = None
    #: node name -> its events in file order (see `reports.events` for the applies and
    #: commits left out)
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
        run.ops = read_ops(hist_path, run.problems)
        run.nemesis = run.ops.nemesis_records()
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
                run.events[node_dir.name] = read_node_events(ev, run.problems)
    else:
        run.missing.append("nodes/")
    run.files = _listed_files(run_dir)
    return run


def read_ops(path: Path, problems: list[str]) -> OpColumns:
    """history.jsonl's client operations (paired leniently, as `pair_ops` pairs them); a file
    the columns do not take is read tolerantly as records, what was skipped noted in
    `problems`."""
    try:
        ops = read_op_columns(path)
    except (Unusual, HistoryReadError) as e:
        log.debug("%s: reading records (%s)", path, e)
        return pair_columns(RecordColumns.of_records(read_records(path, tolerant=True, problems=problems)))
    if ops.records.torn_line is not None:
        problems.append(torn_note(path, ops.records.torn_line))
    return ops


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
