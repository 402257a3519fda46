"""Latency and throughput plots (matplotlib, Agg) embedded in the report as PNG data URIs."""

from __future__ import annotations

import base64
import io
import logging

import matplotlib

matplotlib.use("Agg")  # no display: reports render on CI machines and in the controller

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from checkers.rundata import Op  # noqa: E402
from reports.ops import Fault, Mark, fault_colours  # noqa: E402

log = logging.getLogger(__name__)

TYPE_COLOURS = {"ok": "#2b8cbe", "fail": "#e7298a", "info": "#fdae61"}
QUANTILES = (0.5, 0.95, 0.99)
#: upper bound on time buckets for quantile lines and throughput
MAX_BUCKETS = 200


def _png_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _shade_faults(ax: plt.Axes, faults: list[Fault], labelled: set[str]) -> None:
    colour = fault_colours(faults)
    for fault in faults:
        start, end = fault.start / 1e9, fault.end / 1e9
        if end <= start:
            end = start + 1e-3  # an instantaneous nemesis op still gets a visible line
        label = fault.name if fault.name not in labelled else None
        labelled.add(fault.name)
        ax.axvspan(start, end, color=colour[fault.name], alpha=0.45, lw=0, label=label, zorder=0)


def _draw_marks(ax: plt.Axes, marks: list[Mark]) -> None:
    for m in marks:
        ax.axvline(m.time / 1e9, color="#d73027", lw=1.5, zorder=5)


def _bucket_width(ops: list[Op], faults: list[Fault]) -> float:
    span = max([o.complete or o.invoke for o in ops] + [f.end for f in faults] + [1]) / 1e9
    # one-second buckets for ordinary runs; finer for very short ones, coarser for long ones
    if span < 30:
        return max(span / 30, 1e-3)
    return max(1.0, span / MAX_BUCKETS)


def _fs(ops: list[Op]) -> list[str]:
    seen: dict[str, None] = {}
    for op in ops:
        seen.setdefault(op.f, None)
    return list(seen)


def latency_plot(ops: list[Op], faults: list[Fault], marks: list[Mark]) -> str | None:
    """Scatter of latency against invocation time per f, coloured by outcome, with p50/p95/p99
    per time bucket. None when no op completed."""
    done = [o for o in ops if o.complete is not None]
    if not done:
        return None
    fs = _fs(done)
    width = _bucket_width(ops, faults)
    fig, axes = plt.subplots(len(fs), 1, figsize=(11, 1.2 + 2.0 * len(fs)), sharex=True, squeeze=False)
    for ax, f in zip(axes[:, 0], fs, strict=True):
        _shade_faults(ax, faults, set())
        _draw_marks(ax, marks)
        sel = [o for o in done if o.f == f]
        t = np.array([o.invoke for o in sel], dtype=np.float64) / 1e9
        lat = np.maximum(np.array([(o.complete or 0) - o.invoke for o in sel], dtype=np.float64) / 1e6, 1e-3)
        kinds = np.array([o.type for o in sel])
        for kind, colour in TYPE_COLOURS.items():
            m = kinds == kind
            if m.any():
                ax.scatter(t[m], lat[m], s=3, c=colour, alpha=0.5, lw=0, label=kind, rasterized=True)
        buckets = np.floor(t / width).astype(np.int64)
        uniq = np.unique(buckets)
        for q, style in zip(QUANTILES, ("-", "--", ":"), strict=True):
            ys = [np.quantile(lat[buckets == b], q) for b in uniq]
            ax.plot((uniq + 0.5) * width, ys, style, color="#333333", lw=1, label=f"p{int(q * 100)}")
        ax.set_yscale("log")
        ax.set_ylabel(f"{f}\nlatency (ms)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=8, markerscale=3)
    axes[-1, 0].set_xlabel("time since test start (s)")
    fig.suptitle("Latency over time (scatter per op, quantiles per bucket)", fontsize=10)
    fig.tight_layout()
    return _png_uri(fig)


def throughput_plot(ops: list[Op], faults: list[Fault], marks: list[Mark]) -> str | None:
    """Completions per second per f and outcome, with fault intervals shaded."""
    done = [o for o in ops if o.complete is not None]
    if not done:
        return None
    fs = _fs(done)
    width = _bucket_width(ops, faults)
    end = max(o.complete or 0 for o in done) / 1e9
    nb = int(end // width) + 1
    edges = np.arange(nb + 1) * width
    fig, axes = plt.subplots(len(fs), 1, figsize=(11, 1.2 + 1.6 * len(fs)), sharex=True, squeeze=False)
    for ax, f in zip(axes[:, 0], fs, strict=True):
        _shade_faults(ax, faults, set())
        _draw_marks(ax, marks)
        for kind, colour in TYPE_COLOURS.items():
            t = np.array([(o.complete or 0) for o in done if o.f == f and o.type == kind], dtype=np.float64) / 1e9
            if t.size == 0:
                continue
            counts, _ = np.histogram(t, bins=edges)
            ax.step(edges[:-1], counts / width, where="post", color=colour, lw=1.2, label=kind)
        ax.set_ylabel(f"{f}\nops/s")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=8)
    axes[-1, 0].set_xlabel("time since test start (s)")
    fig.suptitle("Throughput over time (completions per second)", fontsize=10)
    fig.tight_layout()
    return _png_uri(fig)
