"""The linearizability counterexample drawn as porcupine does.

Ops are laid out per process on an event-order axis (each distinct invoke/complete instant
is one step, so short ops stay readable; real times are in the hover text). For each longest
partial linearization, its ops are numbered in linearization order and the op that cannot
be placed next is outlined in red; a table lists the model state after each step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reports.ops import compact
from reports.svg import clip, line, rect, text

#: at most this many longest linearizations are drawn (the checker may return many)
MAX_LINEARIZATIONS = 8
LEFT = 10  # the process labels are a separate, non-scrolling column
LABEL_W = 110
ROW_H = 30
STEP_PX = 84
TOP = 28


@dataclass
class Linearization:
    """One longest partial linearization ready for the template."""

    svg: str
    labels: str  # the process-name column, kept in view while the diagram scrolls
    steps: list[tuple[int, str, str]]  # (op id, op description, state after)


@dataclass
class Counterexample:
    key: Any
    model: str
    message: str
    unplaceable: list[str]
    linearizations: list[Linearization] = field(default_factory=list)
    n_ops: int = 0
    problems: list[str] = field(default_factory=list)


def _op_label(op: dict[str, Any]) -> str:
    f = op.get("f", "?")
    value = op.get("value")
    out = op.get("output")
    kind = op.get("type", "ok")
    label = f"{f} {compact(value, 30)}" if value is not None else str(f)
    if kind == "info":
        return label + " → ?"
    return label + f" → {compact(out, 30)}" if out is not None or f == "read" else label


def _op_title(op: dict[str, Any]) -> str:
    inv, comp = op.get("invoke"), op.get("complete")
    times = f"invoke {_secs(inv)}, complete {_secs(comp) if comp is not None else 'never (info)'}"
    return f"op {op.get('id')} process {op.get('process')}: {_op_label(op)} [{op.get('type', 'ok')}] {times}"


def _process_order(p: Any) -> tuple[int, float, str]:
    return (0, float(p), "") if isinstance(p, int | float) else (1, 0.0, str(p))


def _secs(ns: Any) -> str:
    return f"{ns / 1e9:.6f}s" if isinstance(ns, int | float) else "?"


def build(cx: dict[str, Any], model: str) -> Counterexample:
    """Read the item-6 counterexample dict; anything malformed becomes a noted problem."""
    raw = cx.get("ops")
    ops_raw: list[Any] = raw if isinstance(raw, list) else []
    ops = [o for o in ops_raw if isinstance(o, dict) and "id" in o]
    by_id = {o["id"]: o for o in ops}
    unplaceable = list(dict.fromkeys(u for u in (cx.get("unplaceable") or []) if u in by_id))
    result = Counterexample(
        key=cx.get("key"),
        model=model,
        message=str(cx.get("message") or ""),
        unplaceable=[_op_title(by_id[u]) for u in unplaceable],
        n_ops=len(ops),
    )
    if len(ops) != len(ops_raw):
        result.problems.append(f"{len(ops_raw) - len(ops)} counterexample op(s) without an id skipped")
    raw_longest, raw_states = cx.get("longest"), cx.get("states")
    longest: list[Any] = raw_longest if isinstance(raw_longest, list) else []
    states: list[Any] = raw_states if isinstance(raw_states, list) else []
    if not longest:
        longest = [[]]
    for i, order in enumerate(longest[:MAX_LINEARIZATIONS]):
        order = [x for x in order if x in by_id] if isinstance(order, list) else []
        st = states[i] if i < len(states) and isinstance(states[i], list) else []
        steps = [
            (oid, _op_label(by_id[oid]), str(st[j]) if j < len(st) else "?") for j, oid in enumerate(order)
        ]
        svg, labels = _draw(ops, order, set(unplaceable), steps)
        result.linearizations.append(Linearization(svg=svg, labels=labels, steps=steps))
    if len(longest) > MAX_LINEARIZATIONS:
        result.problems.append(f"showing {MAX_LINEARIZATIONS} of {len(longest)} longest linearizations")
    return result


def _draw(ops: list[dict[str, Any]], order: list[Any], unplaceable: set[Any],
          steps: list[tuple[int, str, str]]) -> tuple[str, str]:
    """(diagram SVG, process-label column SVG)."""
    if not ops:
        return '<p class="missing">the counterexample has no operations</p>', ""
    instants = sorted(
        {o["invoke"] for o in ops if isinstance(o.get("invoke"), int | float)}
        | {o["complete"] for o in ops if isinstance(o.get("complete"), int | float)}
    )
    pos = {t: i for i, t in enumerate(instants)}
    last = len(instants)  # info ops run off the end of the axis
    processes: list[Any] = []
    for o in sorted(ops, key=lambda o: _process_order(o.get("process"))):
        if o.get("process") not in processes:
            processes.append(o.get("process"))
    row = {p: i for i, p in enumerate(processes)}
    rank = {oid: j for j, oid in enumerate(order)}
    step_px = max(STEP_PX, 900 / max(last, 1))  # few events: wider boxes, readable labels
    width = LEFT + (last + 1) * step_px + 20
    height = TOP + len(processes) * ROW_H + 24
    labels = [f'<svg class="cx-labels" xmlns="http://www.w3.org/2000/svg" width="{LABEL_W}" height="{height}">']
    parts = [
        f'<svg class="cx" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    for p, r in row.items():
        y = TOP + r * ROW_H
        parts.append(rect(0, y, width, ROW_H, "cx-lane" if r % 2 == 0 else "cx-lane2"))
        labels.append(rect(0, y, LABEL_W, ROW_H, "cx-lane" if r % 2 == 0 else "cx-lane2"))
        labels.append(text(6, y + ROW_H / 2 + 4, clip(f"process {p}", LABEL_W - 8), "cx-proc"))
    label_every = max(1, int(110 // step_px) + 1)  # time labels are ~100px wide
    for i in range(0, last, label_every):
        x = LEFT + i * step_px + step_px / 2
        parts.append(line(x, TOP - 4, x, height - 20, "cx-tick"))
        parts.append(text(max(x, 2), TOP - 8, _secs(instants[i]), "cx-time", "start" if i == 0 else "middle"))
    for o in ops:
        inv = o.get("invoke")
        if not isinstance(inv, int | float):
            continue
        comp = o.get("complete")
        x1 = LEFT + pos[inv] * step_px + step_px / 2
        x2 = LEFT + (pos[comp] if isinstance(comp, int | float) else last) * step_px + step_px / 2
        y = TOP + row[o.get("process")] * ROW_H + 4
        oid = o["id"]
        if oid in unplaceable:
            cls = "cx-op cx-bad"
        elif oid in rank:
            cls = "cx-op cx-lin"
        else:
            cls = "cx-op"
        if not isinstance(comp, int | float):
            cls += " cx-info"
        title = _op_title(o)
        if oid in rank:
            title += f"\nlinearized #{rank[oid] + 1}; state after: {steps[rank[oid]][2]}"
        parts.append(rect(x1, y, x2 - x1, ROW_H - 8, cls, title))
        label = _op_label(o)
        if oid in rank:
            label = f"#{rank[oid] + 1} {label}"
        elif oid in unplaceable:
            label = f"✗ {label}"
        parts.append(text(x1 + 3, y + ROW_H / 2, clip(label, x2 - x1 - 4), "cx-label"))
    parts.append(text(LEFT, height - 6, "event order → (hover an operation for its times and the model state)", "cx-time"))
    parts.append("</svg>")
    labels.append("</svg>")
    return "".join(parts), "".join(labels)


def describe(cx: Counterexample) -> str:
    """One line for the banner link."""
    key = f" on key {compact(cx.key, 30)}" if cx.key is not None else ""
    return f"{cx.n_ops} ops{key}: {cx.message}" if cx.message else f"{cx.n_ops} ops{key}"
