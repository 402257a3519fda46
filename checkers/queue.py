"""The log (queue) checker: acknowledged appends against every replica's final copy, after
Jepsen's set and queue checkers for streaming systems.

History shape (docs/architecture.md): `append` ops carry a unique value; each replica's copy is
one `read-replica` op completed `ok` with `value` = [[seq, value], ...] in sequence order and
`node` = the replica's node (taken after the cluster healed and, where possible, caught up).

Reported, each naming the values and replicas:
- lost: acknowledged (`ok`) and in no replica's copy;
- failed-present: an append that certainly did not happen (`fail`) is in some copy;
- unexpected: a value no append ever carried;
- duplicated: one value at two sequences of one replica;
- divergent: replicas holding different values at the same sequence (a value ordered
  differently on different replicas shows up here);
- missing: a replica lacks a value other replicas hold at a sequence below its own last one
  (a hole; a replica that merely ends earlier is reported as behind, not as an anomaly).
Indeterminate (`info`) appends may or may not be present; those present count as recovered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from checkers.history import HistoryError
from checkers.result import UNKNOWN, CheckResult
from checkers.rundata import StoredRun

NAME = "log"
APPEND = "append"
READ_REPLICA = "read-replica"
#: Values listed per kind in the result; past it they are only counted.
MAX_LISTED = 50


def _outcomes(history: Iterable[Mapping[str, Any]]) -> tuple[dict[Any, str], dict[str, list[tuple[int, Any]]]]:
    """{value: final outcome of its append} and {node: its last replica read}."""
    pending: dict[Any, tuple[str, Any]] = {}
    appends: dict[Any, str] = {}
    replicas: dict[str, list[tuple[int, Any]]] = {}
    for op in history:
        process, kind, f = op.get("process"), op.get("type"), op.get("f")
        if process == "nemesis" or f not in (APPEND, READ_REPLICA):
            continue
        if kind == "invoke":
            pending[process] = (f, op.get("value"))
            if f == APPEND:
                appends.setdefault(_key(op.get("value")), "invoke")
            continue
        started = pending.pop(process, None)
        if started is None or started[0] != f:
            continue
        if f == APPEND:
            appends[_key(started[1])] = str(kind)
        elif kind == "ok":
            node = str(op.get("node"))
            replicas[node] = [(int(s), v) for s, v in (op.get("value") or [])]
    return appends, replicas


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def check(history: Iterable[Mapping[str, Any]]) -> CheckResult:
    appends, replicas = _outcomes(history)
    counts = {k: sum(1 for o in appends.values() if o == k) for k in ("ok", "fail", "info", "invoke")}
    if not replicas:
        return CheckResult(NAME, UNKNOWN, {"message": "no replica was read at the end (no read-replica ok)",
                                           "appends": counts})
    where: dict[Any, dict[str, list[int]]] = {}
    by_seq: dict[int, dict[str, Any]] = {}
    for node, msgs in replicas.items():
        for seq, value in msgs:
            v = _key(value)
            where.setdefault(v, {}).setdefault(node, []).append(seq)
            by_seq.setdefault(seq, {}).setdefault(node, v)
    last = {node: max((s for s, _ in msgs), default=0) for node, msgs in replicas.items()}
    top = max(last.values(), default=0)

    lost = sorted((v for v, o in appends.items() if o == "ok" and v not in where), key=repr)
    failed_present = sorted((v for v, o in appends.items() if o == "fail" and v in where), key=repr)
    unexpected = sorted((v for v in where if v not in appends), key=repr)
    recovered = sum(1 for v, o in appends.items() if o in ("info", "invoke") and v in where)
    duplicated = [{"value": v, "node": n, "seqs": seqs}
                  for v, nodes in sorted(where.items(), key=lambda kv: repr(kv[0]))
                  for n, seqs in sorted(nodes.items()) if len(seqs) > 1]
    divergent = [{"seq": s, "values": {n: v for n, v in sorted(vals.items())}}
                 for s, vals in sorted(by_seq.items()) if len(set(vals.values())) > 1]
    missing = []
    for node, end in sorted(last.items()):
        for seq, vals in sorted(by_seq.items()):
            if seq > end:
                break
            if node not in vals:
                value = next(iter(vals.values()))
                missing.append({"node": node, "seq": seq, "value": value})
    behind = {node: top - end for node, end in sorted(last.items()) if end < top}

    anomalies = {
        "lost": lost, "failed-present": failed_present, "unexpected": unexpected,
        "duplicated": duplicated, "divergent": divergent, "missing": missing,
    }
    found = {k: v for k, v in anomalies.items() if v}
    details: dict[str, Any] = {
        "appends": counts,
        "recovered": recovered,
        "replicas": {n: {"messages": len(msgs), "last_seq": last[n]} for n, msgs in sorted(replicas.items())},
        "behind": behind,
        "anomaly_counts": {k: len(v) for k, v in anomalies.items()},
        **{k: list(v)[:MAX_LISTED] for k, v in found.items()},
    }
    if found:
        details["message"] = "; ".join(_describe(k, v) for k, v in found.items())
    return CheckResult(NAME, not found, details)


class LogChecker:
    """`check` as a `Checker` of a stored run (results.json entry `log`)."""

    name = NAME

    def check(self, run: StoredRun) -> CheckResult:
        try:
            history = run.history()
        except HistoryError as e:
            return CheckResult(self.name, UNKNOWN, {"error": f"history.jsonl: {e}"})
        return check(history)


def _describe(kind: str, items: list[Any]) -> str:
    shown = ", ".join(_one(kind, x) for x in items[:5])
    more = f" and {len(items) - 5} more" if len(items) > 5 else ""
    return f"{len(items)} {kind}: {shown}{more}"


def _one(kind: str, x: Any) -> str:
    if kind == "duplicated":
        return f"{x['value']!r} at seqs {x['seqs']} on {x['node']}"
    if kind == "divergent":
        return f"seq {x['seq']} holds " + ", ".join(f"{v!r} on {n}" for n, v in x["values"].items())
    if kind == "missing":
        return f"{x['value']!r} (seq {x['seq']}) not on {x['node']}"
    return repr(x)
