"""Renders one stored run to a self-contained `report.html` (inline CSS, JS and images)."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkers.result import CheckResult
from checkers.rundata import Op, pair_ops
from reports import clocks, counterexample, plots, raft
from reports.ops import Mark, fault_intervals
from reports.rundata import RunData, load_run
from reports.summary import parse_start, summarize
from reports.templating import environment, static
from reports.timeline import script_json, timeline_data

log = logging.getLogger(__name__)

#: each checker's JSON is shown up to this many characters (the full file is linked)
MAX_CHECKER_JSON = 40_000
MAX_TEST_YAML = 20_000


class ReportError(Exception):
    """The report could not be written (e.g. the run folder is not a directory)."""


@dataclass
class PlotImages:
    latency: str | None
    throughput: str | None
    latency_note: str
    throughput_note: str


def _plots(ops: list[Op], faults: list[Any], marks: list[Mark]) -> PlotImages:
    notes = {"latency": "No completed operations to plot.", "throughput": "No completed operations to plot."}
    images: dict[str, str | None] = {"latency": None, "throughput": None}
    for name, fn in (("latency", plots.latency_plot), ("throughput", plots.throughput_plot)):
        try:
            images[name] = fn(ops, faults, marks)
        except (ValueError, TypeError, OverflowError) as exc:
            # odd recorded data must not cost the reader the rest of the report
            log.warning("%s plot failed: %s", name, exc)
            notes[name] = f"The {name} plot failed: {exc}"
    return PlotImages(images["latency"], images["throughput"], notes["latency"], notes["throughput"])


@dataclass
class ClockPanel:
    image: str | None
    note: str
    rows: list[tuple[str, float, float, float, float, int]]


def _clock_panel(run: RunData, faults: list[Any]) -> ClockPanel | None:
    """Each node's clock over time, for a run with clock faults (None otherwise)."""
    cs = clocks.series(run.history)
    if not cs:
        return None
    nodes = [str(n) for n in run.test.get("nodes") or []]
    try:
        image, note = clocks.clock_plot(cs, faults, nodes), ""
    except (ValueError, TypeError, OverflowError) as exc:
        log.warning("clock plot failed: %s", exc)
        image, note = None, f"The clock plot failed: {exc}"
    return ClockPanel(image, note, clocks.summary(cs, nodes))


def _checker(run: RunData, name: str) -> CheckResult | None:
    return run.results.checker(name) if run.results is not None else None


def _anomaly_marks(cx: dict[str, Any]) -> list[Mark]:
    """Where the linearizability anomaly happened: the completion of each op that cannot be
    placed (the point by which it must have taken effect)."""
    ops = {o.get("id"): o for o in cx.get("ops") or [] if isinstance(o, dict)}
    marks = []
    for oid in dict.fromkeys(cx.get("unplaceable") or []):
        op = ops.get(oid)
        if op is None:
            continue
        t = op.get("complete") if isinstance(op.get("complete"), int) else op.get("invoke")
        if isinstance(t, int):
            marks.append(Mark(t, f"✗ op {oid}: {op.get('f')} cannot be linearized"))
    return marks


#: Lost writes marked on the time axes at most (the lost-writes section lists them all).
MAX_LOST_MARKS = 50


def _lost_writes(entry: CheckResult | None) -> list[dict[str, Any]]:
    """The lost-writes checker's findings, when it found any: per key, the final read that
    misses acknowledged writes, and those writes."""
    lost = None if entry is None else entry.details.get("lost")
    if entry is None or entry.valid is not False or not isinstance(lost, list):
        return []
    return [x for x in lost if isinstance(x, dict)]


def _lost_marks(lost: list[dict[str, Any]]) -> list[Mark]:
    """Each lost write at the moment it was acknowledged."""
    marks: list[Mark] = []
    for x in lost:
        for op in x.get("lost_ops") or []:
            if isinstance(op, dict) and isinstance(op.get("acked"), int) and len(marks) < MAX_LOST_MARKS:
                marks.append(Mark(op["acked"], f"✗ lost write {x.get('key')}={op.get('value')} (acknowledged here)"))
    return marks


def _checker_notes(run: RunData, linked: set[str]) -> dict[str, str]:
    """One line per checker that is not plainly valid, saying why (`CheckResult.message`),
    unless the banner already links its evidence (`linked`: a drawn counterexample, Raft
    violations)."""
    notes: dict[str, str] = {}
    for entry in run.results.checkers.values() if run.results is not None else ():
        if entry.valid is True or (entry.valid is False and entry.name in linked):
            continue
        text = entry.message()
        if text:
            notes[entry.name] = text if len(text) <= 200 else text[:199] + "…"
    return notes


def _checker_json(run: RunData) -> list[tuple[str, str]]:
    if run.results is None:
        return []
    if not run.results.checkers:
        return [("results.json", json.dumps(run.results.raw, indent=1, default=str)[:MAX_CHECKER_JSON])]
    out = []
    for name, entry in run.results.checkers.items():
        body = json.dumps(entry.to_json(), indent=1, default=str)
        if len(body) > MAX_CHECKER_JSON:
            body = body[:MAX_CHECKER_JSON] + f"\n… ({len(body) - MAX_CHECKER_JSON} more characters in results.json)"
        out.append((name, body))
    return out


def render_run(run_dir: Path) -> Path:
    """Write run_dir/report.html from whatever the run folder holds; return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a run folder (no such directory)")
    run = load_run(run_dir)
    ops = pair_ops(run.history)
    faults = fault_intervals(run.history)
    duration_ns = max([o.complete or o.invoke for o in ops] + [f.end for f in faults] + [0])
    summ = summarize(run, n_ops=len(ops), duration_ns=duration_ns)
    concurrency = run.test.get("concurrency")

    lin = _checker(run, "linearizability")
    cx = None
    marks: list[Mark] = []
    # drawn only for an anomaly: a counterexample beside a valid verdict would mislead
    if lin is not None and lin.valid is False and isinstance(lin_cx := lin.details.get("counterexample"), dict):
        cx = counterexample.build(lin_cx, str(lin.details.get("model") or "?"))
        marks = _anomaly_marks(lin_cx)
    lost_entry = _checker(run, "lost-writes")
    lost = _lost_writes(lost_entry)
    marks += _lost_marks(lost)
    tl = timeline_data(ops, faults, concurrency if isinstance(concurrency, int) and concurrency > 0 else None, marks)

    start_wall = parse_start(run.test.get("start_time") or run.test.get("started_at") or run.test.get("start_wall"))
    faults_wall = []
    if start_wall is not None:
        base = start_wall.timestamp()
        faults_wall = [(base + f.start / 1e9, base + f.end / 1e9, f.name) for f in faults]
    clock_maps = clocks.clock_maps(run_dir, run.problems)
    raft_tl = raft.build(_checker(run, "raft-safety"), run.events, faults_wall, clock_maps)
    clock_panel = _clock_panel(run, faults)

    linked = ({"linearizability"} if cx is not None else set()) | (
        {"raft-safety"} if raft_tl is not None and raft_tl.violations else set())
    test_yaml = ""
    if (run_dir / "test.yaml").is_file():
        test_yaml = (run_dir / "test.yaml").read_text(encoding="utf-8", errors="replace")[:MAX_TEST_YAML]
    counts = Counter(o.type for o in ops)
    html = environment().get_template("report.html.j2").render(
        s=summ,
        run=run,
        css=static("report.css"),
        js={"errors": static("errors.js"), "timeline": static("timeline.js"),
            "raft": static("raft.js"), "report": static("report.js")},
        n_ops=len(ops),
        counts=[f"{counts.get(k, 0)} {k}" for k in ("ok", "fail", "info")],
        n_faults=len(faults),
        fault_names=sorted({f.name for f in faults}),
        timeline_json=script_json(tl),
        plots=_plots(ops, faults, marks),
        cx=cx,
        cx_line=counterexample.describe(cx) if cx else "",
        lost=lost,
        lost_line=(lost_entry.message() or "") if lost_entry is not None else "",
        raft=raft_tl,
        clock=clock_panel,
        faults_aligned=bool(faults_wall),
        checker_json=_checker_json(run),
        notes=_checker_notes(run, linked),
        test_yaml=test_yaml,
    )
    out = run_dir / "report.html"
    tmp = run_dir / ".report.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)  # a reader never sees a half-written report
    log.info("report written: %s (%d ops, %.1f MB)", out, len(ops), out.stat().st_size / 1e6)
    return out
