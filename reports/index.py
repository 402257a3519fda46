"""`store/index.html`: every run, newest first, filterable, with per-test trends."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from checkers.results import RESULTS_FILE
from checkers.rundata import HISTORY_FILE, skim_history
from reports.rundata import RunData, read_json, read_results, read_yaml
from reports.summary import RunSummary, summarize
from reports.svg import esc
from reports.templating import environment, static

log = logging.getLogger(__name__)

RUN_FILES = ("test.yaml", HISTORY_FILE, RESULTS_FILE)
VERDICT_COLOURS = {"valid": "#1a9850", "anomaly": "#d73027", "unknown": "#b8860b"}


@dataclass
class IndexRow:
    summary: RunSummary
    href: str  # relative to the store
    has_report: bool
    problems: list[str]


def find_runs(store: Path) -> list[Path]:
    """Run folders `store/<test>/<run>/` holding any recorded file; symlinks (latest) skipped."""
    runs = []
    for test_dir in sorted(p for p in store.iterdir() if p.is_dir() and not p.is_symlink()):
        for run_dir in sorted(p for p in test_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            if any((run_dir / f).is_file() for f in RUN_FILES):
                runs.append(run_dir)
    return runs


def _row(store: Path, run_dir: Path) -> IndexRow:
    run = RunData(run_dir=run_dir)
    if (run_dir / "test.yaml").is_file():
        run.test = read_yaml(run_dir / "test.yaml", run.problems)
    run.results = read_results(run_dir, run.problems)
    n_ops, last = 0, 0
    hist = run_dir / HISTORY_FILE
    if hist.is_file():
        # a soak store holds many large histories, and the index is rendered after every run:
        # never parse them; count from stats when the checker did, else skim
        counted = run.results.op_count() if run.results is not None else None
        skim = skim_history(hist, count_ops=counted is None)
        n_ops = counted if counted is not None else skim.client_ops or 0
        last = skim.last_time
    summary = summarize(run, n_ops=n_ops, duration_ns=last)
    has_report = (run_dir / "report.html").is_file()
    rel = run_dir.relative_to(store).as_posix()
    return IndexRow(summary, f"{rel}/report.html" if has_report else f"{rel}/", has_report, run.problems)


def trend_svg(rows: list[IndexRow]) -> str:
    """Verdict dots (one per run, oldest left) and a throughput line across runs."""
    w, h, pad = 260, 44, 6
    n = len(rows)
    step = (w - 2 * pad) / max(n - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" class="trend">']
    tps = [r.summary.throughput for r in rows]
    known = [t for t in tps if t is not None]
    if known:
        top = max(known) or 1.0
        pts = [f"{pad + i * step:.1f},{h - 14 - (t / top) * (h - 22):.1f}" for i, t in enumerate(tps) if t is not None]
        parts.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="#2b8cbe" stroke-width="1.5">'
                     f"<title>throughput, max {top:.1f} ops/s</title></polyline>")
    for i, r in enumerate(rows):
        colour = VERDICT_COLOURS.get(r.summary.overall, "#999")
        tp = f", {r.summary.throughput:.1f} ops/s" if r.summary.throughput is not None else ""
        when = r.summary.started.strftime("%Y-%m-%d %H:%M:%S") if r.summary.started else "?"
        parts.append(f'<circle cx="{pad + i * step:.1f}" cy="{h - 5}" r="4" fill="{colour}">'
                     f"<title>{esc(when)} seed {esc(r.summary.seed)}: {esc(r.summary.overall)}{esc(tp)}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


@dataclass
class SoakRow:
    """One soak of the store (`soak/<stamp>-<master seed>/soak-summary.json`)."""

    href: str  # its soak.html (or the summary), relative to the store
    master_seed: Any
    started: str
    totals: dict[str, Any]
    exit_code: Any


def find_soaks(store: Path) -> list[SoakRow]:
    """The store's soaks, newest first; an unreadable summary is skipped with a warning."""
    rows = []
    for summary in sorted(store.glob("soak/*/soak-summary.json"), reverse=True):
        problems: list[str] = []
        try:
            data = read_json(summary, problems)
        except OSError as e:
            problems.append(str(e))
            data = None
        if data is None:
            log.warning("%s: left out of the index: %s", summary, "; ".join(problems))
            continue
        page = summary.parent / "soak.html"
        started = data.get("started")
        rows.append(SoakRow(
            href=(page if page.exists() else summary).relative_to(store).as_posix(),
            master_seed=data.get("master_seed"),
            started=(datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S")
                     if isinstance(started, int | float) else "?"),
            totals=totals if isinstance(totals := data.get("totals"), dict) else {},
            exit_code=data.get("exit_code"),
        ))
    return rows


def _sort_key(r: IndexRow) -> tuple[float, str]:
    ts = r.summary.started.timestamp() if isinstance(r.summary.started, datetime) else 0.0
    return (ts, r.href)


def render_index(store_dir: Path) -> Path:
    """Write store_dir/index.html and return its path."""
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    rows = [_row(store, d) for d in find_runs(store)]
    rows.sort(key=_sort_key, reverse=True)
    by_test: dict[str, list[IndexRow]] = defaultdict(list)
    for r in sorted(rows, key=_sort_key):
        by_test[r.summary.name].append(r)
    trends = []
    for name, runs in sorted(by_test.items()):
        if len(runs) >= 2:
            counts = {v: sum(1 for r in runs if r.summary.overall == v) for v in VERDICT_COLOURS}
            trends.append((name, trend_svg(runs), counts, len(runs)))
    checker_names = sorted({c for r in rows for c in r.summary.verdicts})
    html = environment().get_template("index.html.j2").render(
        rows=rows,
        trends=trends,
        soaks=find_soaks(store),
        tests=sorted(by_test),
        checker_names=checker_names,
        css=static("report.css"),
        js={"errors": static("errors.js"), "index": static("index.js")},
    )
    out = store / "index.html"
    tmp = store / ".index.html.tmp"
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    log.info("index written: %s (%d runs)", out, len(rows))
    return out
