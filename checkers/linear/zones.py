"""A shortcut for read/write registers whose writes all have distinct values.

Gibbons & Korach's zone test decides such histories in O(n log n) without any search. Each
written value has a cluster: its write and the reads that returned it. If some op of the
cluster finishes (f_min) before another one starts (s_max), the value must be current during
the whole forward zone (f_min, s_max); otherwise its ops can all take effect at one instant of
the backward zone [s_max, f_min]. The history is linearizable iff no read finishes before its
write starts, no two forward zones overlap, and no backward zone lies inside a forward zone.

Jepsen semantics: an info write may take effect at any time after its call (f = infinity), or
never: one that no read observed is left out, which never hurts. Equal times are concurrent.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from checkers.linear.model import Model
from checkers.linear.models import CasRegister
from checkers.linear.operation import UNKNOWN, Operation

_INF = float("inf")


@dataclass
class ZoneVerdict:
    valid: bool
    message: str = ""
    ops: list[int] = field(default_factory=list)  # indices of the ops of the conflict


@dataclass
class _Cluster:
    value: Any
    write: int | None  # op index; None for the initial value
    s_max: float
    f_min: float
    members: list[int]


def applicable(model: Model, ops: list[Operation]) -> bool:
    """Only reads and writes on a register, each write of a value of its own."""
    if not isinstance(model, CasRegister):
        return False
    seen: set[Any] = {model.init()}
    for o in ops:
        if o.f == "write":
            try:
                if o.value in seen:
                    return False
                seen.add(o.value)
            except TypeError:  # an unhashable value
                return False
        elif o.f != "read":
            return False
    return True


def zone_check(model: CasRegister, ops: list[Operation]) -> ZoneVerdict:
    """Decide a history `applicable` accepts (fail and info reads already removed)."""
    initial = model.init()
    clusters: dict[Any, _Cluster] = {initial: _Cluster(initial, None, -_INF, -_INF, [])}
    for i, o in enumerate(ops):
        if o.f == "write":
            finish = o.return_pos if o.type == "ok" else _INF
            clusters[o.value] = _Cluster(o.value, i, o.call_pos, finish, [i])
    for i, o in enumerate(ops):
        if o.f != "read" or o.output is UNKNOWN or (o.output is None and initial is not None):
            continue
        c = clusters.get(o.output)
        if c is None:
            return ZoneVerdict(False, f"read {o.output!r} (op {o.id}): no write of that value", [i])
        if c.write is not None and o.return_pos < ops[c.write].call_pos:
            return ZoneVerdict(
                False, f"read {o.output!r} (op {o.id}) finished before its write started",
                [i, c.write],
            )
        c.s_max = max(c.s_max, o.call_pos)
        c.f_min = min(c.f_min, o.return_pos)
        c.members.append(i)
    forward: list[_Cluster] = []
    backward: list[_Cluster] = []
    for c in clusters.values():
        if c.write is not None and ops[c.write].type == "info" and len(c.members) == 1:
            continue  # an unobserved crashed write: leaving it out never hurts
        (forward if c.f_min < c.s_max else backward).append(c)
    forward.sort(key=lambda c: c.f_min)
    widest: _Cluster | None = None
    for c in forward:
        if widest is not None and widest.s_max > c.f_min:
            return _conflict(widest, c, "both must be current", ops)
        if widest is None or c.s_max > widest.s_max:
            widest = c
    starts = [c.f_min for c in forward]
    reach: list[_Cluster] = []  # forward zone reaching furthest among those starting earlier
    for c in forward:
        reach.append(c if not reach or c.s_max > reach[-1].s_max else reach[-1])
    for b in backward:
        k = bisect.bisect_left(starts, b.s_max)
        if k and reach[k - 1].s_max > b.f_min:
            return _conflict(reach[k - 1], b, "the second must take effect inside the first's zone", ops)
    return ZoneVerdict(True)


def _conflict(a: _Cluster, b: _Cluster, why: str, ops: list[Operation]) -> ZoneVerdict:
    def span(c: _Cluster) -> str:
        return f"{c.value!r} in ({c.f_min:g}, {c.s_max:g})" if c.f_min < c.s_max else (
            f"{c.value!r} at [{c.s_max:g}, {c.f_min:g}]")

    return ZoneVerdict(False, f"values {span(a)} and {span(b)}: {why}", sorted({*a.members, *b.members}))
