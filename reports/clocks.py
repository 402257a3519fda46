"""Each node's clock in a run with clock faults: the report's clock panel, and true time for
events a node stamped with its own (faked) clock.

Two records, both plain data (docs/architecture.md):
- the nemesis ops: every op that changes clocks carries `clocks: {node: {offset_s, rate}}`,
  the node's clock from that moment on (seconds ahead of true time, and its rate); between
  two records the offset moves by rate - 1 seconds per second. A strobe records its start
  and end; its flips in between are drawn as a band;
- `nodes/<node>/clock.applied`, what the node's clock agent applied: one line per change,
  `<nonce> <applied> <real> <clock> <rate>`: from real time `real` on (the host's true wall
  clock) the node's clock read `clock + (t - real) * rate`. `ClockMap` inverts it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.events import CLOCK_APPLIED
from reports.ops import NEMESIS, Fault
from reports.plots import _png_uri, _shade_faults, plt

log = logging.getLogger(__name__)

APPLIED_FILE = CLOCK_APPLIED
#: Bound on the lines read from one clock.applied (a strobe writes one per flip).
MAX_ANCHORS = 1_000_000
#: Jitter allowed between the order events are written and their clock order (seconds).
ORDER_SLACK = 0.002


@dataclass
class Point:
    """Node's clock from `t` (seconds since the test start) on: offset_s ahead, at rate."""

    t: float
    offset_s: float
    rate: float


@dataclass
class Strobe:
    nodes: list[str]
    start: float
    end: float
    offset_s: float
    period_s: float


@dataclass
class ClockSeries:
    """What the clock panel draws: each node's clock records, and the strobes."""

    points: dict[str, list[Point]] = field(default_factory=dict)
    strobes: list[Strobe] = field(default_factory=list)
    end: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.points)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def series(history: Iterable[dict[str, Any]], end_ns: float | None = None) -> ClockSeries:
    """The clock records of a history's nemesis ops (empty without clock faults). `end_ns`:
    the history's last time, when `history` holds only some of its records (the report keeps
    just the nemesis records as dicts)."""
    out = ClockSeries()
    if end_ns is not None:
        out.end = end_ns / 1e9
    open_strobe: Strobe | None = None
    for op in history:
        t_ns = _num(op.get("time"))
        if t_ns is not None:
            out.end = max(out.end, t_ns / 1e9)
        if op.get("process") != NEMESIS or t_ns is None:
            continue
        t = t_ns / 1e9
        value = op.get("value")
        if not isinstance(value, dict):
            continue
        clocks = value.get("clocks")
        if isinstance(clocks, dict):
            for node, c in clocks.items():
                off = _num(c.get("offset_s")) if isinstance(c, dict) else None
                rate = _num(c.get("rate")) if isinstance(c, dict) else None
                if off is not None and rate is not None:
                    out.points.setdefault(str(node), []).append(Point(t, off, rate))
        f = op.get("f")
        if f == "start-clock" and value.get("kind") == "strobe" and not op.get("error"):
            mag, period = _num(value.get("offset_s")), _num(value.get("period_s"))
            nodes = [str(n) for n in value.get("nodes") or []]
            if mag is not None and nodes:
                open_strobe = Strobe(nodes, t, t, mag, period or 0.0)
        elif open_strobe is not None and (f in ("stop-clock", "heal")):
            open_strobe.end = t
            out.strobes.append(open_strobe)
            open_strobe = None
    if open_strobe is not None:
        open_strobe.end = out.end
        out.strobes.append(open_strobe)
    return out


def _line(points: Sequence[Point], end: float) -> tuple[list[float], list[float], list[float], list[float]]:
    """(t, offset) of the offset line and (t, rate) of the rate steps, from t=0 (true time)
    to `end`."""
    ts, offs, rts, rates = [0.0], [0.0], [0.0], [1.0]
    off, rate, t0 = 0.0, 1.0, 0.0
    for p in sorted(points, key=lambda p: p.t):
        ts.append(p.t)
        offs.append(off + (rate - 1.0) * (p.t - t0))
        ts.append(p.t)
        offs.append(p.offset_s)
        rts += [p.t, p.t]
        rates += [rate, p.rate]
        off, rate, t0 = p.offset_s, p.rate, p.t
    end = max(end, t0)
    ts.append(end)
    offs.append(off + (rate - 1.0) * (end - t0))
    rts.append(end)
    rates.append(rate)
    return ts, offs, rts, rates


NODE_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4")


def clock_plot(cs: ClockSeries, faults: list[Fault], nodes: Sequence[str] = ()) -> str | None:
    """Each node's offset from true time and its rate over time, with every fault shaded and
    strobes drawn as bands; None when the run had no clock records."""
    if not cs:
        return None
    names = [n for n in nodes if n in cs.points] + sorted(set(cs.points) - set(nodes))
    fig, (ax_off, ax_rate) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 2]})
    labelled: set[str] = set()
    _shade_faults(ax_off, faults, labelled)
    _shade_faults(ax_rate, faults, set(labelled))
    for i, node in enumerate(names):
        colour = NODE_COLOURS[i % len(NODE_COLOURS)]
        ts, offs, rts, rates = _line(cs.points[node], cs.end)
        ax_off.plot(ts, offs, color=colour, lw=1.4, label=node)
        ax_rate.plot(rts, rates, color=colour, lw=1.4, label=node)
        for s in cs.strobes:
            if node in s.nodes:
                base = _offset_at(cs.points[node], s.start)
                ax_off.fill_between([s.start, s.end], [base, base], [base + s.offset_s, base + s.offset_s],
                                    color=colour, alpha=0.25, lw=0, hatch="///",
                                    label=f"{node} strobe" if f"{node} strobe" not in labelled else None)
                labelled.add(f"{node} strobe")
    ax_off.axhline(0.0, color="#333333", lw=0.6)
    ax_off.set_ylabel("offset from\ntrue time (s)")
    ax_rate.axhline(1.0, color="#333333", lw=0.6)
    ax_rate.set_ylabel("clock rate (x)")
    ax_rate.set_ylim(bottom=0)
    for ax in (ax_off, ax_rate):
        ax.grid(True, alpha=0.3)
    ax_off.legend(loc="upper left", fontsize=7, ncol=8)
    ax_rate.set_xlabel("time since test start (s)")
    fig.suptitle("Node clocks (from the nemesis ops): offset and rate", fontsize=10)
    fig.tight_layout()
    return _png_uri(fig)


def _offset_at(points: Sequence[Point], t: float) -> float:
    off, rate, t0 = 0.0, 1.0, 0.0
    for p in sorted(points, key=lambda p: p.t):
        if p.t > t:
            break
        off, rate, t0 = p.offset_s, p.rate, p.t
    return off + (rate - 1.0) * (t - t0)


def summary(cs: ClockSeries, nodes: Sequence[str] = ()) -> list[tuple[str, float, float, float, float, int]]:
    """Per node, for the table under the plot: (name, furthest behind and furthest ahead of
    true time (s), slowest and fastest rate, how many clock records)."""
    rows = []
    for node in [n for n in nodes if n in cs.points] + sorted(set(cs.points) - set(nodes)):
        _ts, offs, _rts, rates = _line(cs.points[node], cs.end)
        for s in cs.strobes:
            if node in s.nodes:
                offs.append(_offset_at(cs.points[node], s.start) + s.offset_s)
        rows.append((node, min(offs), max(offs), min(rates), max(rates), len(cs.points[node])))
    return rows


# ---- true time for a node's own timestamps -------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    real: float
    clock: float
    rate: float


def read_applied(path: Path, problems: list[str]) -> list[Anchor]:
    """The anchors of a clock.applied in file order; malformed lines are noted and skipped."""
    out: list[Anchor] = []
    bad = 0
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                if i >= MAX_ANCHORS:
                    problems.append(f"{path.parent.name}/{path.name}: more than {MAX_ANCHORS} lines, the rest ignored")
                    break
                parts = line.split()
                try:
                    real, clock, rate = float(parts[2]), float(parts[3]), float(parts[4])
                except (IndexError, ValueError):
                    bad += 1
                    continue
                if len(parts) != 5 or not rate > 0:
                    bad += 1
                    continue
                out.append(Anchor(real, clock, rate))
    except OSError as e:
        problems.append(f"{path.parent.name}/{path.name}: cannot read: {e.strerror}")
    if bad:
        problems.append(f"{path.parent.name}/{path.name}: {bad} malformed line(s) skipped")
    return out


class ClockMap:
    """Maps a node's own wall-clock readings back to true time, from its clock agent's anchors.

    Before the first anchor the node's clock was true. A clock stepped back reads the same
    value twice, so readings are mapped in the order the node wrote them (`true_times`): each
    lands in the earliest change from the current one on where it is consistent (not before
    the change, not after the next, not before the previous reading)."""

    def __init__(self, anchors: Sequence[Anchor]) -> None:
        self.anchors = list(anchors)

    def _at(self, j: int, ts: float) -> float:
        if j < 0:
            return ts
        a = self.anchors[j]
        return max(a.real, a.real + (ts - a.clock) / a.rate)

    def true_times(self, readings: Iterable[float]) -> list[float]:
        out: list[float] = []
        j, last, n = -1, float("-inf"), len(self.anchors)
        for ts in readings:
            r = self._at(j, ts)
            while j + 1 < n and (r >= self.anchors[j + 1].real or r < last - ORDER_SLACK):
                j += 1
                r = self._at(j, ts)
            out.append(r)
            last = max(last, r)
        return out

    def true_time(self, ts: float) -> float:
        """One reading on its own: the earliest change it is consistent with."""
        return self.true_times([ts])[0]


def clock_maps(run_dir: Path, problems: list[str]) -> dict[str, ClockMap]:
    """A ClockMap per node whose run folder holds a clock.applied (runs with clock faults)."""
    out: dict[str, ClockMap] = {}
    nodes_dir = run_dir / "nodes"
    if not nodes_dir.is_dir():
        return out
    for d in sorted(p for p in nodes_dir.iterdir() if p.is_dir()):
        path = d / APPLIED_FILE
        if path.is_file():
            anchors = read_applied(path, problems)
            if anchors:
                out[d.name] = ClockMap(anchors)
    return out
