"""Latency and throughput plots (matplotlib, Agg) embedded in the report as PNG data URIs,
drawn from the operations as columns (`checkers.opcolumns.OpColumns`): every operation, also
in a run of millions."""

from __future__ import annotations

import base64
import io
import logging

import matplotlib

matplotlib.use("Agg")  # no display: reports render on CI machines and in the controller

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from checkers.opcolumns import OpColumns  # noqa: E402
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


def _span_s(ops: OpColumns, faults: list[Fault]) -> float:
    ends = _ends(ops)
    return max([int(ends.max()) if len(ends) else 0] + [f.end for f in faults] + [1]) / 1e9


def _ends(ops: OpColumns) -> npt.NDArray[np.int64]:
    """Each op's completion, or its invocation if it never completed (or completed at 0)."""
    complete = ops.complete
    return np.where(ops.completed & (complete != 0), complete, ops.invoke)


def _bucket_width(span: float) -> float:
    # one-second buckets for ordinary runs; finer for very short ones, coarser for long ones
    if span < 30:
        return max(span / 30, 1e-3)
    return max(1.0, span / MAX_BUCKETS)


def _fs(ops: OpColumns, rows: npt.NDArray[np.bool_]) -> list[tuple[str, int]]:
    """(name, code) of the functions of the selected ops, in order of first appearance."""
    codes = ops.f[rows]
    _, first = np.unique(codes, return_index=True)
    return [(ops.f_names[int(codes[i])], int(codes[i])) for i in np.sort(first)]


def _bucket_quantiles(t: npt.NDArray[np.float64], values: npt.NDArray[np.float64], width: float
                      ) -> tuple[npt.NDArray[np.float64], list[npt.NDArray[np.float64]]]:
    """Bucket centres and, per quantile, its value in each non-empty bucket of `width` s."""
    buckets = np.floor(t / width).astype(np.int64)
    order = np.argsort(buckets, kind="stable")
    uniq, starts = np.unique(buckets[order], return_index=True)
    groups = np.split(values[order], starts[1:])
    per_q = [np.array([np.quantile(g, q) for g in groups], dtype=np.float64) for q in QUANTILES]
    centres: npt.NDArray[np.float64] = ((uniq + 0.5) * width).astype(np.float64)
    return centres, per_q


def latency_plot(ops: OpColumns, faults: list[Fault], marks: list[Mark]) -> str | None:
    """Scatter of latency against invocation time per f, coloured by outcome, with p50/p95/p99
    per time bucket. None when no op completed."""
    done = ops.completed
    if not done.any():
        return None
    fs = _fs(ops, done)
    width = _bucket_width(_span_s(ops, faults))
    invoke, complete, outcome, f = ops.invoke, ops.complete, ops.outcome, ops.f
    fig, axes = plt.subplots(len(fs), 1, figsize=(11, 1.2 + 2.0 * len(fs)), sharex=True, squeeze=False)
    for ax, (name, code) in zip(axes[:, 0], fs, strict=True):
        _shade_faults(ax, faults, set())
        _draw_marks(ax, marks)
        sel = done & (f == code)
        t = invoke[sel] / 1e9
        lat = np.maximum((complete[sel] - invoke[sel]) / 1e6, 1e-3)
        kinds = outcome[sel]
        for k, (kind, colour) in enumerate(TYPE_COLOURS.items()):
            m = kinds == k
            if m.any():
                ax.scatter(t[m], lat[m], s=3, c=colour, alpha=0.5, lw=0, label=kind, rasterized=True)
        centres, per_q = _bucket_quantiles(t, lat, width)
        for q, ys, style in zip(QUANTILES, per_q, ("-", "--", ":"), strict=True):
            ax.plot(centres, ys, style, color="#333333", lw=1, label=f"p{int(q * 100)}")
        ax.set_yscale("log")
        ax.set_ylabel(f"{name}\nlatency (ms)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=8, markerscale=3)
    axes[-1, 0].set_xlabel("time since test start (s)")
    fig.suptitle("Latency over time (scatter per op, quantiles per bucket)", fontsize=10)
    fig.tight_layout()
    return _png_uri(fig)


def throughput_plot(ops: OpColumns, faults: list[Fault], marks: list[Mark]) -> str | None:
    """Completions per second per f and outcome, with fault intervals shaded."""
    done = ops.completed
    if not done.any():
        return None
    fs = _fs(ops, done)
    width = _bucket_width(_span_s(ops, faults))
    complete, outcome, f = ops.complete, ops.outcome, ops.f
    end = int(complete[done].max()) / 1e9
    nb = int(end // width) + 1
    edges = np.arange(nb + 1) * width
    fig, axes = plt.subplots(len(fs), 1, figsize=(11, 1.2 + 1.6 * len(fs)), sharex=True, squeeze=False)
    for ax, (name, code) in zip(axes[:, 0], fs, strict=True):
        _shade_faults(ax, faults, set())
        _draw_marks(ax, marks)
        for k, (kind, colour) in enumerate(TYPE_COLOURS.items()):
            t = complete[done & (f == code) & (outcome == k)] / 1e9
            if t.size == 0:
                continue
            counts, _ = np.histogram(t, bins=edges)
            ax.step(edges[:-1], counts / width, where="post", color=colour, lw=1.2, label=kind)
        ax.set_ylabel(f"{name}\nops/s")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=8)
    axes[-1, 0].set_xlabel("time since test start (s)")
    fig.suptitle("Throughput over time (completions per second)", fontsize=10)
    fig.tight_layout()
    return _png_uri(fig)
