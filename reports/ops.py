"""Turns a history (invoke/complete lines) into operations and nemesis fault intervals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

NEMESIS = "nemesis"
#: f prefixes that close a fault opened by "start-<name>"
_END_PREFIXES = ("stop-", "end-", "heal-", "resume-", "finish-")
#: bare f values that close every open fault
_HEAL_ALL = {"heal", "stop", "heal-all", "stop-all", "reset"}


#: one colour per fault name (sorted), shared by the canvas timeline and the plots
FAULT_COLOURS = ("#bdbdbd", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1", "#c6dbef")


def fault_colours(faults: list[Fault]) -> dict[str, str]:
    names = sorted({f.name for f in faults})
    return {n: FAULT_COLOURS[i % len(FAULT_COLOURS)] for i, n in enumerate(names)}


@dataclass
class Mark:
    """A moment worth pointing at on every time axis (e.g. where an anomaly happened)."""

    time: int  # ns since test start
    label: str


@dataclass
class Op:
    """One client operation: its invocation paired with its completion (if any)."""

    process: Any
    f: str
    key: Any
    value: Any
    output: Any
    type: str  # ok | fail | info (info also for an invoke never completed)
    invoke: int  # ns since test start
    complete: int | None
    error: str | None = None
    node: str | None = None


@dataclass
class Fault:
    """A nemesis fault from its start to its end (or the end of the history)."""

    name: str
    start: int
    end: int
    detail: str
    closed: bool


def compact(value: Any, limit: int = 80) -> str:
    """A short one-line rendering of a JSON value for hover text and labels."""
    kind = type(value)
    if kind is str:
        text = value
    elif kind is int:
        text = str(value)  # the common case, without json's overhead
    elif value is None:
        text = "null"
    else:
        text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _time(line: dict[str, Any]) -> int:
    t = line.get("time")
    return int(t) if isinstance(t, int | float) else 0


def pair_ops(history: list[dict[str, Any]]) -> list[Op]:
    """Client ops in invocation order; an invoke with no completion is an `info` op."""
    open_by_process: dict[Any, Op] = {}
    ops: list[Op] = []
    for line in history:
        process = line.get("process")
        if process == NEMESIS:
            continue
        kind = line.get("type")
        if kind == "invoke":
            op = Op(
                process=process,
                f=str(line.get("f")),
                key=line.get("key"),
                value=line.get("value"),
                output=None,
                type="info",
                invoke=_time(line),
                complete=None,
                node=line.get("node"),
            )
            open_by_process[_hashable(process)] = op
            ops.append(op)
        elif kind in ("ok", "fail", "info"):
            op_or_none = open_by_process.pop(_hashable(process), None)
            if op_or_none is None:
                continue  # a completion without invoke: nothing to pair it with
            op_or_none.type = str(kind)
            op_or_none.output = line.get("value")
            op_or_none.complete = _time(line)
            err = line.get("error")
            op_or_none.error = None if err is None else compact(err, 120)
    return ops


def _hashable(x: Any) -> Any:
    if type(x) is int or type(x) is str:
        return x
    return x if isinstance(x, int | str | float | None) else json.dumps(x, sort_keys=True)


def fault_intervals(history: list[dict[str, Any]]) -> list[Fault]:
    """Pair nemesis "start-X" with the next "stop-X"/"heal-X"/"heal"; unclosed faults last
    to the end of the history. Any other nemesis f is shown as an instantaneous fault."""
    end_of_history = max((_time(line) for line in history), default=0)
    open_faults: dict[str, tuple[int, str]] = {}
    faults: list[Fault] = []
    for line in history:
        if line.get("process") != NEMESIS:
            continue
        if line.get("type") == "invoke":
            continue  # Jepsen-style nemesis invoke: the completion says what was done
        f = str(line.get("f"))
        t = _time(line)
        detail = compact(line.get("value"), 160)
        if f.startswith("start-"):
            name = f[len("start-") :]
            if line.get("error"):
                # the nemesis could not inject it: a mark, not an interval
                faults.append(Fault(f"{name} (failed)", t, t, f"{detail} error: {compact(line['error'], 120)}", True))
            else:
                open_faults.setdefault(name, (t, detail))
            continue
        closer = next((p for p in _END_PREFIXES if f.startswith(p)), None)
        if closer is not None:
            name = f[len(closer) :]
            if name in open_faults:
                start, d = open_faults.pop(name)
                faults.append(Fault(name, start, t, d, True))
                continue
        if f in _HEAL_ALL or closer is not None:
            for name, (start, d) in list(open_faults.items()):
                faults.append(Fault(name, start, t, d, True))
            open_faults.clear()
            continue
        faults.append(Fault(f, t, t, detail, True))
    for name, (start, d) in open_faults.items():
        faults.append(Fault(name, start, end_of_history, d, False))
    faults.sort(key=lambda x: x.start)
    return faults
