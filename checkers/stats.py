"""Operation counts, latency quantiles and throughput of a history (results.json "stats").

Latency is measured from an invoke to the completion of the same process (a process has at
most one operation in flight) and covers every completion, info included: a timed-out
operation cost its client that long. Throughput is ok completions per second over the span
of the client operations. Nemesis operations are counted apart, per f.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from checkers.result import CheckResult
from checkers.rundata import StoredRun

NAME = "stats"
COMPLETIONS = ("ok", "fail", "info")
QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


class HistoryFormatError(Exception):
    """A history operation lacking a field the stats need (message names the op index)."""


def check(history: Iterable[Mapping[str, Any]]) -> CheckResult:
    """Stats of a history; always valid (stats judge nothing)."""
    ops: dict[str, dict[str, int]] = {}
    latencies: dict[str, list[int]] = {}
    nemesis: dict[str, int] = {}
    pending: dict[Any, Mapping[str, Any]] = {}
    first: int | None = None
    last: int | None = None
    for pos, op in enumerate(history):
        try:
            process, type_, f, t = op["process"], op["type"], op["f"], op["time"]
        except KeyError as e:
            raise HistoryFormatError(f"history op {op.get('index', pos)} lacks field {e}") from e
        if process == "nemesis":
            nemesis[f] = nemesis.get(f, 0) + 1
            continue
        first = t if first is None else min(first, t)
        last = t if last is None else max(last, t)
        if type_ == "invoke":
            stale = pending.get(process)
            if stale is not None:  # never completed: indeterminate, as in Jepsen
                _count(ops, stale["f"], "info")
            pending[process] = op
            continue
        if type_ not in COMPLETIONS:
            raise HistoryFormatError(f"history op {op.get('index', pos)}: unknown type {type_!r}")
        invoke = pending.pop(process, None)
        _count(ops, f, type_)
        if invoke is not None:
            latencies.setdefault(f, []).append(t - invoke["time"])
    for invoke in pending.values():
        _count(ops, invoke["f"], "info")
    span_s = (last - first) / 1e9 if first is not None and last is not None else 0.0
    ok = sum(c["ok"] for c in ops.values())
    return CheckResult(NAME, True, {
        "ops": ops,
        "latency_ms": {f: _quantiles(ns) for f, ns in sorted(latencies.items())},
        "throughput": round(ok / span_s, 3) if span_s > 0 else 0.0,
        "duration_s": round(span_s, 3),
        "nemesis": nemesis,
    })


def _count(ops: dict[str, dict[str, int]], f: str, type_: str) -> None:
    counts = ops.get(f)
    if counts is None:
        counts = ops[f] = dict.fromkeys(COMPLETIONS, 0)
    counts[type_] += 1


def _quantiles(latencies_ns: list[int]) -> dict[str, float]:
    ms = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    values = np.percentile(ms, list(QUANTILES.values()))
    out = {name: round(float(v), 3) for name, v in zip(QUANTILES, values, strict=True)}
    out["max"] = round(float(ms.max()), 3)
    return out


class StatsChecker:
    """Stats as a `Checker` of a stored run: they describe, never judge."""

    name = NAME

    def check(self, run: StoredRun) -> CheckResult:
        return check(run.history())
