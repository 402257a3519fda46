"""Renders one stored run to a self-contained `report.html` (inline CSS, JS and images)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from checkers.opcolumns import OpColumns
from checkers.result import CheckResult
from reports import clocks, counterexample, plots, raft
from reports.ops import Mark, fault_intervals
from reports.rundata import RunData, load_run
from reports.summary import parse_start, summarize
from reports.templating import environment, static
from reports.timeline import MAX_TIMELINE_OPS, Sample, sample_rows, script_json, timeline_data

log = logging.getLogger(__name__)

#: each checker's JSON is shown up to this many characters (the full file is linked)
MAX_CHECKER_JSON = 40_000
MAX_TEST_YAML = 20_000
#: operations in flight at an anomaly that a sampled timeline always draws, per anomaly, for
#: this many anomalies at most
MAX_AT_ANOMALY = 200
MAX_ANOMALIES = 100


class ReportError(Exception):
    """The report could not be written (e.g. the run folder is not a directory)."""


@dataclass
class PlotImages:
    latency: str | None
    throughput: str | None
    latency_note: str
    throughput_note: str


def _plots(ops: OpColumns, faults: list[Any], marks: list[Mark]) -> PlotImages:
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
    cs = clocks.series(run.nemesis, end_ns=run.ops.end_time())  # (clock records are nemesis ops)
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


def _is_time(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


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


def _counterexample_rows(ops: OpColumns, cx: dict[str, Any]) -> list[int]:
    """The rows of the counterexample's operations: its op ids are their rows (invocations in
    file order), checked against the invocation time and process, else looked up by them."""
    invoke = ops.invoke
    processes = ops.records.processes
    rows: list[int] = []
    for op in cx.get("ops") or []:
        if not isinstance(op, dict) or not isinstance(op.get("invoke"), int):
            continue
        oid, t = op.get("id"), op["invoke"]
        if isinstance(oid, int) and 0 <= oid < len(ops) and int(invoke[oid]) == t:
            rows.append(oid)
            continue
        for r in np.flatnonzero(invoke == t).tolist():
            if processes[int(ops.process[r])] == op.get("process"):
                rows.append(r)
    return rows


def _rows_at(ops: OpColumns, times: list[int]) -> list[int]:
    """Operations in flight at each time (invoked before, completed after; the nearest
    invocations first, up to MAX_AT_ANOMALY per time)."""
    if not times or not len(ops):
        return []
    invoke, complete, done = ops.invoke, ops.complete, ops.completed
    rows: list[int] = []
    for t in times[:MAX_ANOMALIES]:
        hit = np.flatnonzero(done & (invoke <= t) & (complete >= t))
        rows += hit[np.argsort(t - invoke[hit], kind="stable")[:MAX_AT_ANOMALY]].tolist()
    return rows


def _sample(ops: OpColumns, cx_rows: list[int], anomaly_times: list[int]) -> Sample:
    if len(ops) <= MAX_TIMELINE_OPS:
        return sample_rows(len(ops))
    reasons = []
    if cx_rows:
        reasons.append("every operation of the counterexample")
    at = _rows_at(ops, anomaly_times)
    if at:
        which = "each anomaly" if len(anomaly_times) <= MAX_ANOMALIES else f"the first {MAX_ANOMALIES} anomalies"
        reasons.append(f"those in flight at {which} (up to {MAX_AT_ANOMALY} each)")
    return sample_rows(len(ops), cx_rows + at, MAX_TIMELINE_OPS, tuple(reasons))


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
    ops = run.ops
    ends = np.where(ops.completed & (ops.complete != 0), ops.complete, ops.invoke)
    faults = fault_intervals(run.nemesis, end_of_history=ops.end_time())  # the latest time of any record
    duration_ns = max([int(ends.max()) if len(ends) else 0] + [f.end for f in faults] + [0])
    summ = summarize(run, n_ops=len(ops), duration_ns=duration_ns)
    concurrency = run.test.get("concurrency")

    lin = _checker(run, "linearizability")
    cx = None
    marks: list[Mark] = []
    cx_rows: list[int] = []
    # drawn only for an anomaly: a counterexample beside a valid verdict would mislead
    if lin is not None and lin.valid is False and isinstance(lin_cx := lin.details.get("counterexample"), dict):
        cx = counterexample.build(lin_cx, str(lin.details.get("model") or "?"))
        marks = _anomaly_marks(lin_cx)
        cx_rows = _counterexample_rows(ops, lin_cx)
    lost_entry = _checker(run, "lost-writes")
    lost = _lost_writes(lost_entry)
    marks += _lost_marks(lost)
    start_wall = parse_start(run.test.get("start_time") or run.test.get("started_at") or run.test.get("start_wall"))
    faults_wall = []
    if start_wall is not None:
        base = start_wall.timestamp()
        faults_wall = [(base + f.start / 1e9, base + f.end / 1e9, f.name) for f in faults]
    clock_maps = clocks.clock_maps(run_dir, run.problems)
    raft_tl = raft.build(_checker(run, "raft-safety"), run.events, faults_wall, clock_maps)
    clock_panel = _clock_panel(run, faults)
    # the timeline samples a long run: what is in flight at each anomaly (linearizability,
    # a lost write acknowledged, a Raft violation) is always drawn
    anomaly_times = [m.time for m in marks]
    if start_wall is not None and raft_tl is not None:
        base = start_wall.timestamp()
        anomaly_times += [int((float(v["ts"]) - base) * 1e9) for v in raft_tl.violations if _is_time(v.get("ts"))]
    sample = _sample(ops, cx_rows, anomaly_times)
    drawn = ops.operations(sample.rows)
    tl = timeline_data(drawn, faults, concurrency if isinstance(concurrency, int) and concurrency > 0 else None, marks,
                       processes=ops.client_processes(), end=duration_ns, sample=sample)
    del drawn

    linked = ({"linearizability"} if cx is not None else set()) | (
        {"raft-safety"} if raft_tl is not None and raft_tl.violations else set())
    test_yaml = ""
    if (run_dir / "test.yaml").is_file():
        test_yaml = (run_dir / "test.yaml").read_text(encoding="utf-8", errors="replace")[:MAX_TEST_YAML]
    counts = dict(zip(("ok", "fail", "info"), np.bincount(ops.outcome, minlength=3).tolist(), strict=True))
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
        timeline_note=sample.note(),
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
