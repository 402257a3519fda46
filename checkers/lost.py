"""Lost writes: every acknowledged write must still be there at the end, per key.

The final reads (history records marked `"final": true`, made after the heal, when no client
op is in flight) must each see the key's last acknowledged write or a later one. For a read
that saw value v, the writes that may have left v are the ops that wrote it (values are
unique per key; a `null` may come from any delete or from the initial state). An acknowledged
write W was lost if every one of them completed before W was invoked: W then had to take
effect after all of them, and no other op wrote v again. Ops whose outcome is unknown (`info`)
may take effect at any time after their invocation, so they never make anything lost.

Linearizability of the whole history implies all this (a final read that misses an
acknowledged write cannot be linearized); this checker names the writes: per key, which read
(node, value) and which acknowledged values are gone, with their completion times, so the
report can point at them. It is also cheap where the linearizability search gives up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from checkers.result import UNKNOWN, CheckResult, Verdict
from checkers.rundata import StoredRun, pair_ops

NAME = "lost-writes"
#: Keys reported in full; past it they are counted.
MAX_REPORTED = 50
_INITIAL = "initial"


@dataclass
class _Write:
    value: Any  # the value it leaves (None for a delete)
    invoke: float
    complete: float  # math.inf while unknown (info, or never completed)
    acked: bool
    f: str


@dataclass
class _Key:
    writes: list[_Write] = field(default_factory=list)
    reads: list[tuple[str | None, Any]] = field(default_factory=list)  # ok final reads (node, value)
    read_tried: bool = False


def _hashable(x: Any) -> Any:
    return tuple(_hashable(v) for v in x) if isinstance(x, list) else x


def _keys(records: list[Mapping[str, Any]]) -> dict[Any, _Key]:
    # each final read runs as a process of its own, so its process id marks its op
    finals = {rec.get("process") for rec in records if rec.get("final") and rec.get("type") == "invoke"}
    keys: dict[Any, _Key] = {}
    for op in pair_ops(records):
        k = keys.setdefault(_hashable(op.key), _Key())
        t_done = math.inf if op.type == "info" or op.complete is None else float(op.complete)
        if op.f == "read":
            if op.process in finals:
                k.read_tried = True
                if op.type == "ok":
                    k.reads.append((op.node, _hashable(op.output)))
            continue
        if op.type == "fail":
            continue  # it certainly did not happen
        if op.f == "write":
            written = op.value
        elif op.f == "cas" and isinstance(op.value, list) and len(op.value) == 2:
            written = op.value[1]
        elif op.f == "delete":
            written = None
        else:
            continue
        k.writes.append(_Write(_hashable(written), float(op.invoke), t_done, op.type == "ok", op.f))
    return keys


def _judge(key: Any, k: _Key) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(lost, unexpected) findings of one key, one per final read that shows them."""
    lost_out, odd_out = [], []
    acked = [w for w in k.writes if w.acked]
    last = max(acked, key=lambda w: w.complete).value if acked else None
    for node, seen in k.reads:
        sources = [w for w in k.writes if w.value == seen]
        if seen is None:
            cover = max([w.complete for w in sources], default=-math.inf)  # or the initial state
        elif not sources:
            odd_out.append({"key": key, "node": node, "read": seen,
                            "message": f"final read on {node} saw {seen!r}, which no op wrote"})
            continue
        else:
            cover = max(w.complete for w in sources)
        gone = sorted((w for w in acked if w.invoke > cover), key=lambda w: w.invoke)
        if gone:
            lost_out.append({
                "key": key, "node": node, "read": seen, "last_acked": last,
                "lost": [w.value for w in gone],
                "lost_ops": [{"f": w.f, "value": w.value, "invoke": int(w.invoke), "acked": int(w.complete)}
                             for w in gone],
            })
    return lost_out, odd_out


def _describe(op: Mapping[str, Any]) -> str:
    return "delete" if op["f"] == "delete" else repr(op["value"])


def check_records(records: Iterable[Mapping[str, Any]]) -> CheckResult:
    keys = _keys(list(records))
    lost: list[dict[str, Any]] = []
    odd: list[dict[str, Any]] = []
    unread: list[Any] = []
    judged = 0
    for key in sorted(keys, key=lambda x: (x is None, str(x))):
        k = keys[key]
        if not k.read_tried:
            continue
        if not k.reads:
            if any(w.acked for w in k.writes):
                unread.append(key)
            continue
        judged += 1
        lo, od = _judge(key, k)
        lost += lo
        odd += od
    distinct = {(_hashable(x["key"]), op["invoke"]) for x in lost for op in x["lost_ops"]}
    n_lost = len(distinct)
    stats = {"keys_judged": judged, "keys_unread": len(unread), "lost_writes": n_lost,
             "keys_with_lost_writes": len({k for k, _ in distinct}),
             "unexpected_values": len(odd)}
    valid: Verdict
    if lost or odd:
        valid = False
        shown: list[str] = []
        for x in lost:
            text = f"{x['key']}: {', '.join(_describe(op) for op in x['lost_ops'][:5])}"
            text += f"{' ...' if len(x['lost_ops']) > 5 else ''} (final read {x['read']!r}"
            if not shown or not shown[-1].startswith(text):
                shown.append(text + f" on {x['node']})")
            else:
                shown[-1] = shown[-1][:-1] + f", {x['node']})"
        message = (f"{n_lost} acknowledged write(s) lost: " + "; ".join(shown[:3])) if lost else odd[0]["message"]
    elif unread:
        valid = UNKNOWN
        message = f"no final read succeeded for {len(unread)} key(s) with acknowledged writes: {unread[:5]}"
    elif not judged:
        valid = UNKNOWN
        message = "no final reads in the history"
    else:
        valid = True
        message = f"every acknowledged write of {judged} key(s) is present at the end"
    return CheckResult(NAME, valid, {
        "message": message,
        "lost": lost[:MAX_REPORTED],
        "unexpected": odd[:MAX_REPORTED],
        "unread": unread[:MAX_REPORTED],
        "stats": stats,
    })


class LostWritesChecker:
    """Judges the final reads of a run's history (see the module doc)."""

    name = NAME

    def check(self, run: StoredRun) -> CheckResult:
        try:
            return check_records(run.history())
        except (ValueError, OSError) as e:
            return CheckResult(self.name, UNKNOWN, {"error": f"history.jsonl: {e}"})
