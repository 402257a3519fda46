"""`soak.html`: the soak's trend on one self-contained page, next to soak-summary.json.

Verdict dots and throughput per run over time (an inline SVG), the totals, and one row per run
linking to its report or folder (relative links, so the store can be served or copied)."""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from harness.campaign.soak_summary import SoakRun, SoakSummary

COLOURS = {"valid": "#1a9850", "anomaly": "#d73027", "unknown": "#b8860b", "infra": "#6a3d9a"}


def trend_svg(runs: list[SoakRun], width: int = 720, height: int = 120) -> str:
    """A dot per run (colour = verdict) on a time axis, and the throughput line above them."""
    pad = 10
    if not runs:
        return ""
    t0 = min(r.started for r in runs)
    span = max(max(r.started for r in runs) - t0, 1.0)

    def x(r: SoakRun) -> float:
        return pad + (r.started - t0) / span * (width - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
    ]
    tps = [(x(r), r.throughput) for r in runs if r.throughput is not None]
    if tps:
        top = max(t for _, t in tps) or 1.0
        pts = " ".join(f"{px:.1f},{height - 24 - t / top * (height - 40):.1f}" for px, t in tps)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#2b8cbe" stroke-width="1.5"/>')
        parts.append(
            f'<text x="{pad}" y="12" font-size="10" fill="#2b8cbe">throughput, max {top:.1f} ops/s</text>'
        )
    for r in runs:
        tip = f"run {r.index} seed {r.seed} {r.test}: {r.verdict}"
        if r.throughput is not None:
            tip += f", {r.throughput:.1f} ops/s"
        colour = COLOURS.get(r.verdict, "#999")
        parts.append(
            f'<circle cx="{x(r):.1f}" cy="{height - 8}" r="5" fill="{colour}"><title>{escape(tip)}</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _link(r: SoakRun, page_dir: Path) -> str:
    if r.run_dir is None or r.kept in ("removed", "pruned"):
        return escape(r.kept if r.run_dir else "no run folder")
    run_dir = Path(r.run_dir)
    target = run_dir / "report.html" if (run_dir / "report.html").exists() else run_dir
    rel = os.path.relpath(target, page_dir)
    return f'<a href="{escape(rel)}">{escape(run_dir.name)}</a>'


def render(summary: SoakSummary, path: Path) -> Path:
    n = summary.counts()
    rows = []
    for r in summary.runs:
        tp = "—" if r.throughput is None else f"{r.throughput:.1f}"
        rows.append(
            f"<tr><td>{r.index}</td><td>{escape(r.test)}</td><td>{r.seed}</td>"
            f'<td style="color:{COLOURS.get(r.verdict, "#999")}">{escape(r.verdict)}</td>'
            f"<td>{escape(', '.join(r.anomalies) or '—')}</td><td>{tp}</td><td>{r.elapsed_s:.0f} s</td>"
            f"<td>{'yes' if r.retried else ''}</td><td>{_link(r, path.parent)}</td>"
            f"<td>{escape(r.message if r.verdict != 'valid' else '')}</td></tr>"
        )
    kinds = "".join(
        f"<li>{escape(k)}: {v} run(s)</li>" for k, v in summary.anomalies_by_kind().items()
    )
    html = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>faultline soak {summary.master_seed}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}}</style></head>
<body><h1>Soak, master seed {summary.master_seed}</h1>
<p>{n["runs"]} runs: {n["valid"]} valid, {n["anomalies"]} with anomalies, {n["unknown"]} unknown,
{n["infra"]} infrastructure errors ({n["retried"]} retried). Stopped by {escape(summary.stopped_by)}.
Exit code {summary.exit_code()}.</p>
<p>Replay: <code>{escape(summary.replay_command())}</code></p>
<ul>{kinds}</ul>
{trend_svg(summary.runs)}
<table><tr><th>run</th><th>test</th><th>seed</th><th>verdict</th><th>anomalies</th><th>ops/s</th>
<th>time</th><th>retried</th><th>run</th><th>finding</th></tr>
{"".join(rows)}</table></body></html>
"""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path
