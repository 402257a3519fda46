"""Reads whatever a run folder holds, tolerating missing and half-written files.

A report is most needed when a run went wrong, so nothing here raises on a missing or
truncated file: each gap is recorded in `RunData.missing` / `RunData.problems` and shown.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)


@dataclass
class RunData:
    """Everything recorded in one run folder that a report draws."""

    run_dir: Path
    test: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Any] | None = None
    #: node name -> its events (all types) in file order
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: relative paths (from run_dir) of files a reader may want to open
    files: list[str] = field(default_factory=list)
    #: names of expected inputs that are absent
    missing: list[str] = field(default_factory=list)
    #: one-line descriptions of inputs that exist but could not be fully read
    problems: list[str] = field(default_factory=list)


def read_jsonl(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Parse a JSON-lines file; a malformed line (e.g. a torn last line) is skipped and noted."""
    out: list[dict[str, Any]] = []
    bad = 0
    first_bad = 0
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                first_bad = first_bad or lineno
                continue
            if isinstance(obj, dict):
                out.append(obj)
            else:
                bad += 1
                first_bad = first_bad or lineno
    if bad:
        problems.append(f"{path.name}: {bad} malformed line(s), first at line {first_bad}")
    return out


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


def load_run(run_dir: Path) -> RunData:
    """Read test.yaml, history.jsonl, results.json and nodes/*/events.jsonl, as far as present."""
    run = RunData(run_dir=run_dir)
    test_path = run_dir / "test.yaml"
    if test_path.is_file():
        run.test = read_yaml(test_path, run.problems)
    else:
        run.missing.append("test.yaml")
    hist_path = run_dir / "history.jsonl"
    if hist_path.is_file():
        run.history = read_jsonl(hist_path, run.problems)
    else:
        run.missing.append("history.jsonl")
    res_path = run_dir / "results.json"
    if res_path.is_file():
        run.results = read_json(res_path, run.problems)
    else:
        run.missing.append("results.json")
    nodes_dir = run_dir / "nodes"
    if nodes_dir.is_dir():
        for node_dir in sorted(p for p in nodes_dir.iterdir() if p.is_dir()):
            ev = node_dir / "events.jsonl"
            if ev.is_file():
                run.events[node_dir.name] = read_jsonl(ev, run.problems)
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
