"""Small builders for hand-made histories in the checker tests."""

from __future__ import annotations

from typing import Any

from checkers.history import ops_from_records
from checkers.linear import Operation


def rec(time: int, process: Any, type_: str, f: str, value: Any = None, key: Any = None) -> dict[str, Any]:
    r: dict[str, Any] = {"time": time, "process": process, "type": type_, "f": f, "value": value}
    if key is not None:
        r["key"] = key
    return r


def op(process: Any, f: str, value: Any, start: int, end: int | None, result: str = "ok",
       out: Any = None, key: Any = None) -> list[dict[str, Any]]:
    """An invoke record and (unless end is None) its completion."""
    records = [rec(start, process, "invoke", f, value if f != "read" else None, key)]
    if end is not None:
        done_value = out if f == "read" else value
        records.append(rec(end, process, result, f, done_value, key))
    return records


def history(*ops: list[dict[str, Any]]) -> list[Operation]:
    records = sorted((r for o in ops for r in o), key=lambda r: (r["time"], r["type"] != "invoke"))
    return ops_from_records(records, "test")
