"""Operation counts, latency quantiles and throughput of a history (results.json "stats").

Operations are paired by `checkers.rundata.pair_ops` (Jepsen's semantics: an invocation never
completed counts as info). Latency is measured from an invoke to the completion of the same
process and covers every completion, info included: a timed-out operation cost its client
that long. Throughput is ok completions per second over the span of the client operations.
Nemesis operations are counted apart, per f.

A stored run's history is read as columns (`checkers.opcolumns`: no dict per record, the same
pairing); a history of an unusual shape, or one given as records, goes through `check`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from checkers.history import NEMESIS
from checkers.jsonl_blocks import HistoryReadError, Unusual
from checkers.opcolumns import OpColumns, read_op_columns
from checkers.result import CheckResult
from checkers.rundata import StoredRun, pair_ops

log = logging.getLogger(__name__)

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


def check_columns(ops: OpColumns) -> CheckResult:
    """`check` of a history read as columns (paired strictly): the same entry."""
    rc = ops.records
    done = ops.completed
    invoke, complete = ops.invoke, ops.complete[done]
    unmatched_t = rc.time[ops.unmatched]
    times = [a for a in (unmatched_t, invoke, complete) if len(a)]
    span_ns = int(max(a.max() for a in times)) - int(min(a.min() for a in times)) if times else 0
    # per (f, outcome): operations first, in invocation order, then unmatched completions
    names = list(ops.f_names)
    codes = {name: i for i, name in enumerate(names)}
    um_f = np.array([codes.setdefault(str(rc.fs[c]), len(codes)) for c in rc.f[ops.unmatched].tolist()],
                    dtype=np.int64)
    names = list(codes)
    um_outcome = rc.type[ops.unmatched].astype(np.int64) - 1
    f_all = np.concatenate([ops.f.astype(np.int64), um_f])
    outcome_all = np.concatenate([ops.outcome.astype(np.int64), um_outcome])
    counts = np.bincount(f_all * len(COMPLETIONS) + outcome_all, minlength=len(names) * len(COMPLETIONS))
    _, first = np.unique(f_all, return_index=True)
    ops_out: dict[str, dict[str, int]] = {}
    for code in f_all[np.sort(first)].tolist():
        row = counts[code * len(COMPLETIONS):(code + 1) * len(COMPLETIONS)].tolist()
        ops_out[names[code]] = dict(zip(COMPLETIONS, row, strict=True))
    latency_ns = complete - invoke[done]
    done_f = ops.f[done]
    latency = {names[c]: _quantiles(latency_ns[done_f == c]) for c in np.unique(done_f).tolist()}
    nem_names = [str(f) for f in rc.fs]
    nemesis: dict[str, int] = {}
    for c in rc.f[ops.nemesis].tolist():
        nemesis[nem_names[c]] = nemesis.get(nem_names[c], 0) + 1
    span_s = span_ns / 1e9
    ok = sum(c["ok"] for c in ops_out.values())
    return CheckResult(NAME, True, {
        "ops": ops_out,
        "latency_ms": dict(sorted(latency.items())),
        "throughput": round(ok / span_s, 3) if span_s > 0 else 0.0,
        "duration_s": round(span_s, 3),
        "nemesis": nemesis,
    })


def _quantiles(latencies_ns: list[int] | npt.NDArray[np.int64]) -> dict[str, float]:
    ms = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    values = np.percentile(ms, list(QUANTILES.values()))
    out = {name: round(float(v), 3) for name, v in zip(QUANTILES, values, strict=True)}
    out["max"] = round(float(ms.max()), 3)
    return out


class StatsChecker:
    """Stats as a `Checker` of a stored run: they describe, never judge."""

    name = NAME

    def check(self, run: StoredRun) -> CheckResult:
        if run.history_in_memory or not run.history_path.exists():
            return check(run.history())
        try:
            ops = read_op_columns(run.history_path, strict=True)
        except (Unusual, HistoryReadError) as e:
            log.debug("%s: stats from records (%s)", run.history_path, e)
            return check(run.history())
        return check_columns(ops)
