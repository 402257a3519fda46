"""Operation counts, latency quantiles and throughput of a history (results.json "stats").

Operations are paired by `checkers.rundata.pair_ops` (Jepsen's semantics: an invocation never
completed counts as info). Latency is measured from an invoke to the completion of the same
process and covers every completion, info included: a timed-out operation cost its client
that long. Throughput is ok completions per second over the span of the client operations.
Nemesis operations are counted apart, per f.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from checkers.history import NEMESIS
from checkers.result import CheckResult
from checkers.rundata import StoredRun, pair_ops

NAME = "stats"
COMPLETIONS = ("ok", "fail", "info")
QUANTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def check(history: Iterable[Mapping[str, Any]]) -> CheckResult:
    """Stats of a history; always valid (stats judge nothing). A record lacking process, type,
    f or time is a HistoryFormatError naming it."""
    records = history if isinstance(history, list) else list(history)
    unmatched: list[Mapping[str, Any]] = []
    paired = pair_ops(records, strict=True, unmatched=unmatched)
    latencies: dict[str, list[int]] = {}
    times = [int(r["time"]) for r in unmatched]
    for op in paired:
        times.append(op.invoke)
        if op.complete is not None:
            times.append(op.complete)
            latencies.setdefault(op.f, []).append(op.complete - op.invoke)
    # a completion whose invocation is missing still happened: counted, without a latency
    outcomes = Counter([(op.f, op.type) for op in paired] + [(str(r["f"]), str(r["type"])) for r in unmatched])
    ops: dict[str, dict[str, int]] = {}
    for (f, type_), n in outcomes.items():
        ops.setdefault(f, dict.fromkeys(COMPLETIONS, 0))[type_] += n
    nemesis = dict(Counter(str(r["f"]) for r in records if r["process"] == NEMESIS))
    span_s = (max(times) - min(times)) / 1e9 if times else 0.0
    ok = sum(c["ok"] for c in ops.values())
    return CheckResult(NAME, True, {
        "ops": ops,
        "latency_ms": {f: _quantiles(ns) for f, ns in sorted(latencies.items())},
        "throughput": round(ok / span_s, 3) if span_s > 0 else 0.0,
        "duration_s": round(span_s, 3),
        "nemesis": nemesis,
    })


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
