"""The run's data, read one way for everyone: history.jsonl as records (strict for the
checkers, tolerant for the reports), invocations paired with their completions, a cheap skim
of a history for listings of many runs, and the run folder as checkers see it (`StoredRun`).
results.json is read by `checkers.results`.

Checkers receive a `StoredRun` instead of a history already in memory, so a checker that reads
the files its own way (node events, system logs, a columnar history reader) does not pay for
the others, and a run whose history nobody needs as dicts is never held as dicts.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.history import COMPLETIONS, NEMESIS, HistoryError, Record, read_jsonl
from checkers.history_text import BadLine, loads_line, open_regular

log = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
#: How much of a history's end `skim_history` reads for the last time stamp.
TAIL_BYTES = 64 * 1024


class HistoryFormatError(HistoryError):
    """A history record lacking what a strict pairing needs (the message names the op)."""


# ---------------------------------------------------------------- reading


def read_records(path: str | Path, *, tolerant: bool = False, problems: list[str] | None = None) -> list[Record]:
    """The records of a run's JSON-lines file (history.jsonl, a node's events.jsonl), each
    with `_line`, its line number.

    Strict (the checkers): a torn last line (a run killed mid-write) is skipped with a warning,
    any other bad line is a HistoryError naming file and line. Tolerant (the reports, which are
    most needed when a run went wrong): nothing in the file raises; malformed lines are skipped
    and one line per file saying so is appended to `problems`."""
    path = Path(path)
    if not tolerant:
        return read_jsonl(path)
    notes = problems if problems is not None else []
    try:
        records = read_jsonl(path)
    except HistoryError:
        return _salvage(path, notes)
    torn = _torn_last_line(path)
    if torn is not None:
        notes.append(torn_note(path, torn))
    return records


def torn_note(path: Path, line: int) -> str:
    """What a tolerant reader notes for a torn last line it skipped."""
    return f"{path.name}: torn last line {line} skipped (the run was killed mid-write?)"


def _salvage(path: Path, notes: list[str]) -> list[Record]:
    """Every line that is a JSON object; the others counted in one note."""
    records: list[Record] = []
    bad = first_bad = 0
    try:
        with open_regular(path) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                if n == 1:
                    line = line.removeprefix(codecs.BOM_UTF8)
                try:
                    rec = loads_line(line.decode("utf-8", errors="replace"))
                except BadLine:
                    rec = None
                if not isinstance(rec, dict):
                    bad += 1
                    first_bad = first_bad or n
                    continue
                rec["_line"] = n
                records.append(rec)
    except OSError as e:
        notes.append(f"{path.name}: cannot read: {e.strerror or e}")
        return records
    except HistoryError as e:  # not a regular file
        notes.append(f"{path.name}: {str(e).removeprefix(f'{path}: ')}")
        return records
    if bad:
        notes.append(f"{path.name}: {bad} malformed line(s) skipped, first at line {first_bad}")
    return records


def _torn_last_line(path: Path) -> int | None:
    """The number of the last non-blank line if it is not JSON (strict reading skips it)."""
    with path.open("rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        tail = b""
        while pos > 0:  # back from the end until the last line is whole
            step = min(pos, TAIL_BYTES)
            pos -= step
            fh.seek(pos)
            tail = fh.read(step) + tail
            if tail.rstrip().rfind(b"\n") >= 0:
                break
        body = tail.rstrip()
        start = body.rfind(b"\n") + 1
        if not body[start:]:
            return None
        try:
            loads_line(body[start:])
            return None
        except BadLine:
            pass
        fh.seek(0)
        return _count_newlines(fh, pos + start) + 1


def _count_newlines(fh: Any, limit: int) -> int:
    count = 0
    while limit > 0:
        chunk = fh.read(min(limit, 1 << 20))
        if not chunk:
            break
        count += chunk.count(b"\n")
        limit -= len(chunk)
    return count


# ---------------------------------------------------------------- skimming

_INVOKE = re.compile(rb'"type"\s*:\s*"invoke"')
_NEMESIS = re.compile(rb'"process"\s*:\s*"nemesis"')
_TIME = re.compile(rb'"time"\s*:\s*(\d+)')


@dataclass(frozen=True)
class HistorySkim:
    """A history's size without parsing it: client invocations (None if not counted) and
    the last `time` stamp (ns since the test started; 0 if none)."""

    client_ops: int | None
    last_time: int


def skim_history(path: str | Path, *, count_ops: bool = True) -> HistorySkim:
    """What a listing of many runs (the store index) needs from a history that may be large:
    the last time from the file's tail only (the history is appended in time order), and with
    `count_ops` the client invocations by a byte scan of each line, without JSON parsing."""
    path = Path(path)
    ops: int | None = None
    with path.open("rb") as fh:
        if count_ops:
            ops = sum(1 for line in fh if _INVOKE.search(line) and not _NEMESIS.search(line))
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - TAIL_BYTES))
        tail = fh.read()
    return HistorySkim(ops, max((int(m.group(1)) for m in _TIME.finditer(tail)), default=0))


# ---------------------------------------------------------------- pairing


@dataclass(slots=True)
class Op:
    """One client operation: its invocation paired with its completion (if any)."""

    process: Any
    f: str
    key: Any
    value: Any  # the invocation's value
    output: Any  # the completion's value
    type: str  # ok | fail | info (info also for an invocation never completed)
    invoke: int  # ns since the test started
    complete: int | None
    error: Any = None
    node: str | None = None


def pair_ops(
    records: Iterable[Mapping[str, Any]], *, strict: bool = False, unmatched: list[Mapping[str, Any]] | None = None
) -> list[Op]:
    """Client operations in invocation order, each invocation paired with the next completion
    of its process, Jepsen's way: a process has one operation in flight, and an `info`
    completion or none at all (the process invoked again, or the history ended) leaves the
    operation indeterminate, type `info`. Nemesis records are skipped.

    Strict (stats): every record carries process, type, f and a numeric time, and client
    records have a known type, else HistoryFormatError. Lenient (the report): a missing time
    counts as 0, records of unknown type are ignored. A completion with no open invocation
    is appended to `unmatched` if given.

    (The linearizability checker pairs with `checkers.history.pair`, which also validates
    that a completion matches its invocation and freezes values for the search.)"""
    open_ops: dict[Any, Op] = {}
    ops: list[Op] = []
    for pos, rec in enumerate(records):
        try:  # subscripts: the common case, and much faster than .get
            process, kind, f, t = rec["process"], rec["type"], rec["f"], rec["time"]
        except KeyError:
            if strict:
                _refuse(rec, pos)
            process, kind, f, t = rec.get("process"), rec.get("type"), rec.get("f"), rec.get("time")
        if process == NEMESIS:
            continue
        if type(t) is not int:
            if strict and (not isinstance(t, int | float) or isinstance(t, bool)):
                raise HistoryFormatError(f"history op {rec.get('index', pos)}: time {t!r} is not a number")
            t = int(t) if isinstance(t, int | float) else 0
        key = process if type(process) is int or type(process) is str else _hashable(process)
        if kind == "invoke":
            op = Op(process, f if type(f) is str else str(f), rec.get("key"), rec.get("value"), None, "info",
                    t, None, None, rec.get("node"))  # fmt: skip
            open_ops[key] = op  # an earlier one still open stays indeterminate
            ops.append(op)
        elif kind in COMPLETIONS:
            done = open_ops.pop(key, None)
            if done is None:
                if unmatched is not None:
                    unmatched.append(rec)
                continue
            done.type = kind
            done.output = rec.get("value")
            done.complete = t
            done.error = rec.get("error")
        elif strict:
            raise HistoryFormatError(f"history op {rec.get('index', pos)}: unknown type {kind!r}")
    return ops


def _refuse(rec: Mapping[str, Any], pos: int) -> None:
    lacking = next(name for name in ("process", "type", "f", "time") if name not in rec)
    raise HistoryFormatError(f"history op {rec.get('index', pos)} lacks field {lacking!r}")


def _hashable(x: Any) -> Any:
    if isinstance(x, int | str | float | None):
        return x
    return json.dumps(x, sort_keys=True, default=str)


# ---------------------------------------------------------------- the run folder


@dataclass
class StoredRun:
    """One run folder: `test.yaml` already parsed into `test`; `history.jsonl` read lazily."""

    dir: Path
    test: Mapping[str, Any] = field(default_factory=dict)
    _history: list[Record] | None = field(default=None, repr=False)

    @property
    def history_path(self) -> Path:
        return self.dir / HISTORY_FILE

    @property
    def nodes_dir(self) -> Path:
        """`nodes/<node>/`: each node's collected logs and events."""
        return self.dir / "nodes"

    @property
    def history_in_memory(self) -> bool:
        """Whether the records are held already (given, or read by an earlier checker): a
        checker with a reader of its own then uses them instead."""
        return self._history is not None

    def history(self) -> list[Record]:
        """history.jsonl's records, read strictly (`read_records`) once and shared by every
        checker; no history.jsonl is an empty history."""
        if self._history is None:
            self._history = read_records(self.history_path) if self.history_path.exists() else []
        return self._history

    def first_boot_ts(self) -> float | None:
        """Wall-clock time of the earliest `boot` event of any node (only each node's first
        boot event is read: events files grow large)."""
        earliest: float | None = None
        for events in sorted(self.nodes_dir.glob("*/events.jsonl")):
            try:
                with events.open(encoding="utf-8", errors="replace") as fh:
                    for line in fh:
                        try:
                            ev = json.loads(line)
                        except ValueError:
                            continue
                        if isinstance(ev, dict) and ev.get("type") == "boot" and isinstance(ev.get("ts"), int | float):
                            ts = float(ev["ts"])
                            earliest = ts if earliest is None else min(earliest, ts)
                            break  # a node's first boot is its first boot event
            except OSError as e:
                log.warning("%s: %s", events, e)
        return earliest

    @classmethod
    def of_records(cls, records: list[Record], dir: Path, test: Mapping[str, Any] | None = None) -> StoredRun:
        """A run whose history is already in memory (tests, `faultline check`)."""
        return cls(dir=dir, test=dict(test or {}), _history=records)
