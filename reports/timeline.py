"""Compact, column-oriented data for the canvas operation timeline.

One array per field, so 100,000 operations embed as a few megabytes of JSON and the page
draws them on a <canvas> without one DOM node per operation.
"""

from __future__ import annotations

import json
from typing import Any

from checkers.rundata import Op
from reports.ops import Fault, Mark, compact, fault_colours

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


def timeline_data(ops: list[Op], faults: list[Fault], concurrency: int | None,
                  marks: list[Mark] | None = None) -> dict[str, Any]:
    """Columns: row, start/end in microseconds (end -1 = never completed), type code,
    f index, and a hover description per op."""
    end_of_history = 0
    for op in ops:
        end_of_history = max(end_of_history, op.invoke, op.complete or 0)
    for fault in faults:
        end_of_history = max(end_of_history, fault.end)
    rows: dict[Any, str] = {}
    row_keys: list[Any] = []
    for op in ops:
        key, label = _row_label(op.process, concurrency)
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
        key, _ = _row_label(op.process, concurrency)
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
