"""Compact, column-oriented data for the canvas operation timeline.

One array per field, so 100,000 operations embed as a few megabytes of JSON and the page
draws them on a <canvas> without one DOM node per operation. A longer run draws a sample of
its operations (`sample_rows`): the ones an anomaly names always, the rest evenly spread, and
the page says so (`Sample.note`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from checkers.rundata import Op
from reports.ops import Fault, Mark, compact, fault_colours

#: The timeline of a run with more operations than this draws a sample of this many.
MAX_TIMELINE_OPS = 100_000

TYPE_CODES = {"ok": 0, "fail": 1, "info": 2}


def _row_label(process: Any, concurrency: int | None) -> tuple[Any, str]:
    # After an info, Jepsen workers continue as process + concurrency: fold them back onto
    # the worker's row so the timeline has one lane per client thread.
    if concurrency and isinstance(process, int) and process >= 0:
        w = process % concurrency
        return (0, w), f"worker {w}"
    if isinstance(process, int):
        return (0, process), f"process {process}"
    return (1, str(process)), f"process {process}"


@dataclass
class Sample:
    """Which operations (rows, in invocation order) the timeline draws, of how many, and how
    many of them were drawn because an anomaly names them (`always`)."""

    rows: npt.NDArray[np.int64]
    total: int
    always: int = 0
    #: what the always-drawn operations are, for the note ("the counterexample's", ...)
    reasons: tuple[str, ...] = ()

    @property
    def sampled(self) -> bool:
        return len(self.rows) < self.total

    def note(self) -> str:
        """One line saying what was left out, or "" when every operation is drawn."""
        if not self.sampled:
            return ""
        rest = len(self.rows) - self.always
        spread = f"sampled evenly (about one in {(self.total - self.always) / rest:,.0f})" if rest else "no others"
        head = f"Showing {len(self.rows):,} of {self.total:,} operations"
        head += f": {' and '.join(self.reasons)}, the rest {spread}" if self.reasons else f", {spread}"
        return head + "; every fault is drawn. The counts, plots and checkers cover every operation."


def sample_rows(total: int, always: Iterable[int] = (), bound: int = MAX_TIMELINE_OPS,
                reasons: tuple[str, ...] = ()) -> Sample:
    """Every row when there are at most `bound`; else the rows `always` wants and evenly
    spaced others up to `bound` in all."""
    if total <= bound:
        return Sample(np.arange(total, dtype=np.int64), total)
    must = np.unique(np.fromiter(always, dtype=np.int64))
    must = must[(must >= 0) & (must < total)]
    room = max(bound - len(must), 0)
    rest = np.setdiff1d(np.arange(total, dtype=np.int64), must, assume_unique=True)
    picked = rest[(np.arange(room, dtype=np.int64) * len(rest)) // room] if room and len(rest) else rest[:0]
    return Sample(np.union1d(must, picked), total, len(must), reasons)


def timeline_data(ops: list[Op], faults: list[Fault], concurrency: int | None,
                  marks: list[Mark] | None = None, *, processes: Iterable[Any] | None = None,
                  end: int | None = None, sample: Sample | None = None) -> dict[str, Any]:
    """Columns: row, start/end in microseconds (end -1 = never completed), type code,
    f index, and a hover description per op. `processes` gives the lanes (default: those
    of `ops`; a sample's lanes are all the run's), `end` the end of the history (default:
    the last time among `ops` and `faults`)."""
    end_of_history = 0
    for op in ops:
        end_of_history = max(end_of_history, op.invoke, op.complete or 0)
    for fault in faults:
        end_of_history = max(end_of_history, fault.end)
    if end is not None:
        end_of_history = max(end_of_history, end)
    rows: dict[Any, str] = {}
    row_keys: list[Any] = []
    for process in (op.process for op in ops) if processes is None else processes:
        key, label = _row_label(process, concurrency)
        if key not in rows:
            rows[key] = label
            row_keys.append(key)
    row_keys.sort()
    row_index = {k: i for i, k in enumerate(row_keys)}
    f_names: list[str] = []
    f_index: dict[str, int] = {}
    col_row: list[int] = []
    col_s: list[int] = []
    col_e: list[int] = []
    col_k: list[int] = []
    col_f: list[int] = []
    col_d: list[str] = []
    for op in ops:
        key, label = _row_label(op.process, concurrency)
        if key not in row_index:  # a lane the given processes lacked
            row_index[key] = len(row_keys)
            row_keys.append(key)
            rows[key] = label
        if op.f not in f_index:
            f_index[op.f] = len(f_names)
            f_names.append(op.f)
        col_row.append(row_index[key])
        col_s.append(op.invoke // 1000)
        col_e.append(-1 if op.complete is None else op.complete // 1000)
        col_k.append(TYPE_CODES.get(op.type, 2))
        col_f.append(f_index[op.f])
        col_d.append(describe_op(op))
    return {
        "end": end_of_history // 1000,
        "rows": [rows[k] for k in row_keys],
        "fs": f_names,
        "row": col_row,
        "s": col_s,
        "e": col_e,
        "k": col_k,
        "f": col_f,
        "d": col_d,
        "fault_colours": fault_colours(faults),
        "marks": [{"t": m.time // 1000, "label": m.label} for m in marks or []],
        "total": sample.total if sample is not None else len(ops),
        "faults": [
            {"name": x.name, "s": x.start // 1000, "e": x.end // 1000, "d": x.detail, "closed": x.closed}
            for x in faults
        ],
    }


def describe_op(op: Op) -> str:
    """One line: process, key, f, value, outcome (and error)."""
    parts = [f"p{op.process}"]
    if op.key is not None:
        parts.append(f"{compact(op.key, 24)}")
    parts.append(op.f)
    if op.value is not None:
        parts.append(compact(op.value, 40))
    outcome = op.type
    if op.type == "ok" and op.output is not None and op.output != op.value:
        outcome += " " + compact(op.output, 40)
    if op.error:
        outcome += f" ({compact(op.error, 40)})"
    parts.append("→ " + outcome)
    if op.node:
        parts.append(f"@{op.node}")
    return " ".join(parts)


def script_json(obj: Any) -> str:
    """JSON safe to place inside a <script type="application/json"> element."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
