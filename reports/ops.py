"""Nemesis fault intervals of a history, and what the report draws on every time axis (client
operations are read as columns by `checkers.opcolumns`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
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


def fault_intervals(history: Iterable[dict[str, Any]], end_of_history: int | None = None) -> list[Fault]:
    """Pair nemesis "start-X" with the next "stop-X"/"heal-X"/"heal"; unclosed faults last
    to the end of the history (`end_of_history`, else the latest time among the records
    given: pass it when giving only the nemesis records). Any other nemesis f is shown as an
    instantaneous fault."""
    history = list(history)
    if end_of_history is None:
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
