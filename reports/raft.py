"""The Raft timeline: each node's role and term over time, restarts, membership changes,
leader changes, term changes (so extra elections show) and safety violations, as an inline SVG.

Segments come from the raft-safety checker's `timeline` when present, else from the nodes'
role/boot events. Times are wall-clock seconds (the events' `ts`); the axis is relative to
the earliest of them. A node stamps its events with its own clock: under clock faults those
readings are mapped back to true time with the node's clock record (reports.clocks.ClockMap)
before they are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checkers.result import CheckResult
from reports.clocks import ClockMap
from reports.ops import compact
from reports.svg import esc, line, rect, text

LEFT = 60
WIDTH = 1100
ROW_H = 26
TOP = 22
#: above this many segments per node, adjacent segments of the same role are merged
MAX_SEGMENTS_PER_NODE = 4000
#: term changes marked per node at most (their count is still in the per-node table)
MAX_TERM_MARKS_PER_NODE = 2000


@dataclass
class Segment:
    start: float
    end: float
    role: str
    term: Any
    boot: Any


@dataclass
class Mark:
    ts: float
    node: str
    kind: str  # boot | conf | term-up
    title: str


@dataclass
class NodeElections:
    """How much electing one node saw: what makes extra elections visible at a glance."""

    node: str
    first_term: Any
    last_term: Any
    term_changes: int  # times its term went up
    pre_campaigns: int  # pre-candidate segments
    campaigns: int  # candidate segments
    led_terms: int  # terms it led


@dataclass
class RaftTimeline:
    source: str  # "raft-safety timeline" | "node events"
    svg: str
    leaders: list[tuple[float, str, Any]] = field(default_factory=list)  # (rel ts, node, term)
    conf_changes: list[tuple[float, str, str]] = field(default_factory=list)  # (rel ts, node, what)
    violations: list[dict[str, Any]] = field(default_factory=list)
    elections: list[NodeElections] = field(default_factory=list)
    #: nodes whose own clock readings were mapped back to true time
    true_time: list[str] = field(default_factory=list)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def segments_from_results(timeline: dict[str, Any]) -> dict[str, list[Segment]]:
    out: dict[str, list[Segment]] = {}
    for node, segs in timeline.items():
        if not isinstance(segs, list):
            continue
        good = []
        for s in segs:
            if not isinstance(s, dict):
                continue
            start, end = _num(s.get("start")), _num(s.get("end"))
            if start is None:
                continue
            good.append(Segment(start, end if end is not None else start, str(s.get("role")), s.get("term"), s.get("boot")))
        out[str(node)] = good
    return out


def segments_from_events(events: dict[str, list[dict[str, Any]]]) -> dict[str, list[Segment]]:
    """Role segments per boot; the last segment of a boot ends at that boot's last event,
    so the gap until the next boot shows the node down."""
    out: dict[str, list[Segment]] = {}
    for node, evs in events.items():
        segs: list[Segment] = []
        cur: Segment | None = None
        last_ts: float | None = None
        cur_boot: Any = None
        for ev in sorted((e for e in evs if _num(e.get("ts")) is not None), key=lambda e: float(e["ts"])):
            ts = float(ev["ts"])
            kind = ev.get("type")
            boot = ev.get("boot")
            if kind == "boot" or (cur is not None and boot != cur_boot):
                if cur is not None and last_ts is not None:
                    cur.end = last_ts
                    segs.append(cur)
                cur_boot = boot
                cur = Segment(ts, ts, "follower", ev.get("term"), boot)
            elif kind == "role":
                if cur is not None:
                    cur.end = ts
                    segs.append(cur)
                cur_boot = boot
                cur = Segment(ts, ts, str(ev.get("role")), ev.get("term"), boot)
            last_ts = ts
        if cur is not None and last_ts is not None:
            cur.end = last_ts
            segs.append(cur)
        out[node] = [s for s in segs if s.end >= s.start]
    return out


def _merge(segs: list[Segment]) -> list[Segment]:
    """Bound the drawing: merge neighbours of the same role and boot (terms become a range)."""
    if len(segs) <= MAX_SEGMENTS_PER_NODE:
        return segs
    merged: list[Segment] = []
    for s in segs:
        if merged and merged[-1].role == s.role and merged[-1].boot == s.boot:
            merged[-1].end = s.end
            merged[-1].term = f"{str(merged[-1].term).split('–')[0]}–{s.term}"
        else:
            merged.append(Segment(s.start, s.end, s.role, s.term, s.boot))
    return merged


def marks_from_events(events: dict[str, list[dict[str, Any]]]) -> list[Mark]:
    marks: list[Mark] = []
    for node, evs in events.items():
        for ev in evs:
            ts = _num(ev.get("ts"))
            if ts is None:
                continue
            if ev.get("type") == "boot":
                marks.append(Mark(ts, node, "boot", f"{node} boot {ev.get('boot')}: term {ev.get('term')}, "
                                  f"vote {ev.get('vote')}, commit {ev.get('commit')}"))
            elif ev.get("type") == "conf":
                marks.append(Mark(ts, node, "conf", f"{node} conf @{ev.get('index')}: voters "
                                  f"{compact(ev.get('voters'))} learners {compact(ev.get('learners'))}"))
    return marks


def events_on_true_time(events: dict[str, list[dict[str, Any]]],
                        maps: dict[str, ClockMap]) -> dict[str, list[dict[str, Any]]]:
    """Each node's events with `ts` mapped from its own clock to true time (file order)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for node, evs in events.items():
        cm = maps.get(node)
        timed = [e for e in evs if _num(e.get("ts")) is not None]
        if cm is None or not timed:
            out[node] = evs
            continue
        true = iter(cm.true_times(float(e["ts"]) for e in timed))
        out[node] = [{**e, "ts": next(true)} if _num(e.get("ts")) is not None else e for e in evs]
    return out


def _segments_on_true_time(segs: dict[str, list[Segment]], maps: dict[str, ClockMap]) -> None:
    for node, ss in segs.items():
        cm = maps.get(node)
        if cm is None or not ss:
            continue
        flat = cm.true_times(t for s in ss for t in (s.start, s.end))
        for i, s in enumerate(ss):
            s.start, s.end = flat[2 * i], max(flat[2 * i], flat[2 * i + 1])


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def term_changes(segs: dict[str, list[Segment]]) -> tuple[list[Mark], list[NodeElections]]:
    """A mark where a node's term goes up, and per node how much electing it saw."""
    marks: list[Mark] = []
    stats: list[NodeElections] = []
    for node in sorted(segs, key=_node_order):
        prev: int | None = None
        first: int | None = None
        changes = pre = camp = led = 0
        led_term: int | None = None
        for s in segs[node]:
            term = _int(s.term)
            if s.role == "pre-candidate":
                pre += 1
            elif s.role == "candidate":
                camp += 1
            elif s.role == "leader" and term is not None and term != led_term:
                led += 1
                led_term = term
            if term is None:
                continue
            first = term if first is None else first
            if prev is not None and term > prev:
                changes += 1
                if changes <= MAX_TERM_MARKS_PER_NODE:
                    marks.append(Mark(s.start, node, "term-up", f"{node}: term {prev} → {term} ({s.role})"))
            prev = term if prev is None else max(prev, term)
        stats.append(NodeElections(node, first, prev, changes, pre, camp, led))
    return marks, stats


def build(raft_result: CheckResult | None, events: dict[str, list[dict[str, Any]]],
          faults_wall: list[tuple[float, float, str]],
          clock_maps: dict[str, ClockMap] | None = None) -> RaftTimeline | None:
    """None when there is neither a checker timeline nor any node event. `clock_maps` (from
    the nodes' clock records) put the readings of nodes under clock faults on true time."""
    maps = clock_maps or {}
    if maps:
        events = events_on_true_time(events, maps)
    timeline = raft_result.details.get("timeline") if raft_result is not None else None
    if isinstance(timeline, dict) and timeline:
        segs, source = segments_from_results(timeline), "raft-safety timeline"
        _segments_on_true_time(segs, maps)
    elif events:
        segs, source = segments_from_events(events), "node events"
    else:
        return None
    segs = {n: _merge(s) for n, s in segs.items()}
    marks = marks_from_events(events)
    term_marks, elections = term_changes(segs)
    marks += term_marks
    if not any(m.kind == "boot" for m in marks):
        # no events: a new boot number in the checker timeline is a restart
        for node, ss in segs.items():
            prev: Any = object()
            for s in ss:
                if s.boot != prev:
                    marks.append(Mark(s.start, node, "boot", f"{node} boot {s.boot}"))
                prev = s.boot
    violations = raft_result.violations() if raft_result is not None else []
    if maps:
        violations = [_violation_on_true_time(v, maps) for v in violations]
    nodes = sorted(set(segs) | set(events), key=_node_order)
    all_ts = [s.start for ss in segs.values() for s in ss] + [s.end for ss in segs.values() for s in ss]
    all_ts += [m.ts for m in marks] + [float(v["ts"]) for v in violations if _num(v.get("ts")) is not None]
    if not all_ts:
        return None
    t0, t1 = min(all_ts), max(all_ts)
    span = max(t1 - t0, 1e-3)
    rt = RaftTimeline(source=source, svg="", elections=elections, true_time=sorted(maps, key=_node_order))
    for node in nodes:
        prev_leader: Segment | None = None
        for s in segs.get(node, []):
            if s.role == "leader" and (prev_leader is None or prev_leader.term != s.term):
                rt.leaders.append((s.start - t0, node, s.term))
                prev_leader = s
    rt.leaders.sort(key=lambda x: x[0])
    rt.conf_changes = sorted((m.ts - t0, m.node, m.title) for m in marks if m.kind == "conf")
    for v in violations:
        ts = _num(v.get("ts"))
        rt.violations.append({**v, "rel": None if ts is None else ts - t0})
    rt.svg = _draw(nodes, segs, marks, rt.violations, t0, span, faults_wall)
    return rt


def _violation_on_true_time(v: dict[str, Any], maps: dict[str, ClockMap]) -> dict[str, Any]:
    ts = _num(v.get("ts"))
    owner = next((n for n in v.get("nodes") or [] if n in maps), None)
    if ts is None or owner is None:
        return v
    return {**v, "ts": maps[owner].true_time(ts)}


def _node_order(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 1 << 30, name)


def _at(start: float, end: float | None = None) -> str:
    """Data attributes with times relative to t0, for the page's zoom script to re-layout."""
    return f' data-s="{start:.6f}"' + (f' data-e="{end:.6f}"' if end is not None else "")


def _draw(nodes: list[str], segs: dict[str, list[Segment]], marks: list[Mark], violations: list[dict[str, Any]],
          t0: float, span: float, faults_wall: list[tuple[float, float, str]]) -> str:
    plot_w = WIDTH - LEFT - 10
    height = TOP + len(nodes) * ROW_H + 30

    def x(ts: float) -> float:
        return LEFT + (ts - t0) / span * plot_w

    row = {n: i for i, n in enumerate(nodes)}
    parts = [f'<svg class="raft" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" data-left="{LEFT}" data-plot-w="{plot_w}" data-span="{span:.6f}">',
             f'<clipPath id="rf-clip"><rect x="{LEFT}" y="0" width="{plot_w}" height="{height}"/></clipPath>']
    for node in nodes:
        y = TOP + row[node] * ROW_H
        parts.append(text(6, y + ROW_H / 2 + 4, node, "rf-node"))
        parts.append(line(LEFT, y + ROW_H / 2, WIDTH - 10, y + ROW_H / 2, "rf-down"))
    parts.append('<g clip-path="url(#rf-clip)">')
    for start, end, name in faults_wall:
        if end >= t0 and start <= t0 + span:
            xs, xe = x(max(start, t0)), x(min(end, t0 + span))
            parts.append(rect(xs, TOP - 6, max(xe - xs, 1), len(nodes) * ROW_H + 6, "rf-fault", f"nemesis: {name}",
                              _at(max(start, t0) - t0, min(end, t0 + span) - t0)))
    for node in nodes:
        y = TOP + row[node] * ROW_H
        for s in segs.get(node, []):
            xs, xe = x(s.start), x(s.end)
            title = (f"{node} {s.role} term {s.term} boot {s.boot}: "
                     f"{s.start - t0:.3f}s – {s.end - t0:.3f}s")
            parts.append(rect(xs, y + 3, xe - xs, ROW_H - 6, f"rf-{esc(s.role)}", title, _at(s.start - t0, s.end - t0)))
            # every segment gets its term label; the script hides those too narrow to read
            hidden = "" if xe - xs > 24 else ' style="display:none"'
            parts.append(text(xs + 2, y + ROW_H / 2 + 4, f"t{s.term}", "rf-term",
                              extra=_at(s.start - t0, s.end - t0) + hidden))
    for m in marks:
        if m.node not in row:
            continue
        y = TOP + row[m.node] * ROW_H
        if m.kind == "boot":
            shape = f"M0,{y + 2:.1f} l5,0 l-5,8 z"
        elif m.kind == "term-up":  # a notch under the bar: the node's term went up here
            shape = f"M0,{y + ROW_H - 5:.1f} l-3,5 l6,0 z"
        else:
            shape = f"M0,{y + ROW_H - 10:.1f} l4,4 l-4,4 l-4,-4 z"
        parts.append(f'<path d="{shape}" transform="translate({x(m.ts):.1f},0)" class="rf-{m.kind}"{_at(m.ts - t0)}>'
                     f"<title>{esc(m.title)}</title></path>")
    for i, v in enumerate(violations):
        if v.get("rel") is None:
            continue
        xv = LEFT + v["rel"] / span * plot_w
        vnodes = [n for n in v.get("nodes") or [] if n in row] or nodes
        for n in vnodes:
            y = TOP + row[n] * ROW_H
            parts.append(line(xv, y, xv, y + ROW_H, "rf-viol",
                              f"violation {i + 1}: {v.get('kind')}: {v.get('message')}", _at(v["rel"])))
        parts.append(f'<a href="#violation-{i + 1}">'
                     f'{text(xv + 2, TOP - 8, f"✗{i + 1}", "rf-viol-label", extra=_at(v["rel"]))}</a>')
    parts.append("</g>")
    for k in range(6):
        xt = LEFT + k * plot_w / 5
        anchor = "start" if k == 0 else ("end" if k == 5 else "middle")
        parts.append(text(xt, height - 8, f"{k * span / 5:.1f}s", "rf-axis", anchor, f' data-k="{k / 5}"'))
    parts.append("</svg>")
    return "".join(parts)
