"""history.jsonl's client operations as columns, for the stats checker and the report.

`read_op_columns` reads each record's process, type, f and time, and where its line starts, a
block at a time (`checkers.jsonl_blocks`), without keeping a dict per record, and pairs each
invocation with the next completion of its process exactly as `checkers.rundata.pair_ops`
does (an invocation never completed, or followed by another of its process, is `info`; a
completion with no open invocation is `unmatched`). The records a reader wants in full (a
report's sampled operations, the nemesis records) are parsed again from their lines.

Strict (stats) and lenient (the report) as in `pair_ops`. The file is read as the record
reader (`checkers.rundata.read_records`) reads it (see `checkers.jsonl_blocks`): a torn last
line is skipped only after a client record, and the records parsed again hold what json gives
(an integer beyond 64 bits exact, not the float orjson rounds it to). Anything the columns do
not take (a line that is not JSON before the last one, a corrupt last line, a record that is
not an object, an unhashable process or f, a float process or f beyond 2**53, a time that is
not a number in strict mode) raises `Unusual`: the caller then reads the records as dicts,
which also gives the errors with their file and line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from checkers.history_text import warn
from checkers.jsonl_blocks import (
    Interned,
    Offsets,
    Part,
    TornLine,
    Unusual,
    gc_paused,
    lines_at,
    loads_exact,
    read_parts,
)
from checkers.rundata import Op

NEMESIS = "nemesis"
#: Bytes read at a time, and the file size from which forked workers read it.
BLOCK = 1 << 23
SERIAL_BELOW_BYTES = 64 << 20
#: Record types as codes; -1 any other type, -2 no type field.
INVOKE, OK, FAIL, INFO, OTHER, NO_TYPE = 0, 1, 2, 3, -1, -2
COMPLETIONS = ("ok", "fail", "info")
#: Times beyond this (ns) could overflow a difference of two in int64.
TIME_BOUND = 2**62

IntArray = npt.NDArray[np.int64]


class _Missing:
    """A field a record does not have (JSON null is None)."""

    def __repr__(self) -> str:
        return "<missing>"

    def __reduce__(self) -> str:
        return "MISSING"  # one object, also back from a reader process


MISSING = _Missing()
_TYPE_CODES: dict[Any, int] = {"invoke": INVOKE, "ok": OK, "fail": FAIL, "info": INFO, MISSING: NO_TYPE}
_FIELDS = ("process", "type", "f", "time")
_GETTERS = tuple(map(itemgetter, _FIELDS))


@dataclass
class RecordColumns:
    """Every record of a history, in file order: process and f as codes into `processes` and
    `fs` (the first object of each distinct value), the type code, the time (ns; 0 where it
    is not a number, True/False counting as 1/0, as the lenient pairing reads it) and whether
    it was a number (`plain`). `offset` is where each record's line starts in `path`; a
    history read as dicts keeps them in `source` instead."""

    process: npt.NDArray[np.int32]
    processes: list[Any]
    type: npt.NDArray[np.int8]
    f: npt.NDArray[np.int32]
    fs: list[Any]
    time: IntArray
    plain: npt.NDArray[np.bool_]
    offset: IntArray
    path: Path | None = None
    source: Sequence[dict[str, Any]] | None = None
    #: the line number of a torn last line that was skipped (a run killed mid-write)
    torn_line: int | None = None

    def __len__(self) -> int:
        return len(self.type)

    def records(self, idx: Sequence[int] | IntArray) -> list[dict[str, Any]]:
        """The records at these positions, parsed again from their lines."""
        return list(self.iter_records(idx))

    def iter_records(self, idx: Sequence[int] | IntArray) -> Iterator[dict[str, Any]]:
        """`records`, one at a time (a caller that keeps a few fields need not hold them all);
        positions in increasing order read the file front to back."""
        rows = np.asarray(idx, dtype=np.int64).tolist()
        if self.source is not None:
            source = self.source
            yield from (source[i] for i in rows)
            return
        if not rows or self.path is None:
            return
        yield from map(loads_exact, lines_at(self.path, self.offset[rows].tolist()))

    @classmethod
    def of_records(cls, records: Sequence[dict[str, Any]]) -> RecordColumns:
        """Columns of records already in memory (any shape, as the lenient pairing reads it:
        a missing field is None, a process that is not hashable is told apart by its JSON)."""
        process_codes: dict[Any, int] = {}
        processes: list[Any] = []
        f_codes: dict[str, int] = {}
        fs: list[Any] = []
        n = len(records)
        proc = np.empty(n, dtype=np.int32)
        fcol = np.empty(n, dtype=np.int32)
        types = np.empty(n, dtype=np.int8)
        times = np.zeros(n, dtype=np.int64)
        plain = np.zeros(n, dtype=bool)
        for i, rec in enumerate(records):
            p = rec.get("process")
            key = p if isinstance(p, int | str | float | None) else orjson.dumps(p, option=orjson.OPT_SORT_KEYS)
            code = process_codes.get(key)
            if code is None:
                code = process_codes[key] = len(processes)
                processes.append(p)
            proc[i] = code
            name = str(rec.get("f"))
            code = f_codes.get(name)
            if code is None:
                code = f_codes[name] = len(fs)
                fs.append(name)
            fcol[i] = code
            kind = rec.get("type")
            types[i] = _TYPE_CODES.get(kind, OTHER) if isinstance(kind, str) else OTHER
            t = rec.get("time")
            if isinstance(t, int | float) and -TIME_BOUND < t < TIME_BOUND:
                times[i] = int(t)
                plain[i] = not isinstance(t, bool)
        return cls(proc, processes, types, fcol, fs, times, plain, np.arange(n, dtype=np.int64), source=records)


class _Sink:
    """One byte range's records as columns (codes local to the range)."""

    def __init__(self) -> None:
        self.process = Interned()
        self.f = Interned()
        self.blocks: dict[str, list[npt.NDArray[Any]]] = {n: [] for n in ("process", "type", "f", "time", "plain",
                                                                          "offset")}

    def add(self, recs: list[Any], offsets: Offsets | None) -> None:
        try:
            try:  # every field there: the common case, and faster than .get
                processes, types, fs, times = (list(map(get, recs)) for get in _GETTERS)
            except KeyError:
                processes, types, fs, times = ([d.get(name, MISSING) for d in recs] for name in _FIELDS)
        except (AttributeError, TypeError):
            raise Unusual("a record is not a JSON object") from None
        b = self.blocks
        try:
            b["process"].append(self.process.add(processes))
            b["f"].append(self.f.add(fs))
            b["type"].append(np.fromiter(map(_TYPE_CODES.get, types, repeat(OTHER)), dtype=np.int8, count=len(types)))
        except TypeError:
            raise Unusual("an unhashable process, type or f") from None
        kinds = set(map(type, times))
        try:
            if kinds == {int}:
                t = np.array(times, dtype=np.int64)
                plain = np.ones(len(times), dtype=bool)
            elif kinds <= {int, float}:
                t = np.fromiter(map(int, times), dtype=np.int64, count=len(times))  # truncated, as int()
                plain = np.ones(len(times), dtype=bool)
            else:  # some records without a number there: 0, as the lenient pairing reads them
                plain = np.fromiter((type(x) is int or type(x) is float for x in times), dtype=bool, count=len(times))
                t = np.fromiter((int(x) if isinstance(x, int | float) else 0 for x in times), dtype=np.int64,
                                count=len(times))
        except OverflowError:
            raise Unusual("a time beyond 64 bits") from None
        if len(t) and (int(t.max()) >= TIME_BOUND or int(t.min()) <= -TIME_BOUND):
            raise Unusual("a time beyond 2**62")
        b["time"].append(t)
        b["plain"].append(plain)
        assert offsets is not None
        b["offset"].append(offsets)

    def finish(self) -> tuple[dict[str, npt.NDArray[Any]], list[Any], list[Any]]:
        arrays: dict[str, npt.NDArray[Any]] = {}
        dtype: Any
        for name, dtype in (("process", np.int32), ("type", np.int8), ("f", np.int32), ("time", np.int64),
                            ("plain", bool), ("offset", np.int64)):
            parts = self.blocks.pop(name)
            arrays[name] = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
        return arrays, self.process.objects, self.f.objects


def read_record_columns(path: str | Path, workers: int | None = None, warnings: list[str] | None = None
                        ) -> RecordColumns:
    """Every record of a history.jsonl as columns; raises HistoryReadError or Unusual. The
    warning for a torn last line goes to `warnings` if given, else to the log."""
    path = Path(path)
    parts, torn = read_parts(path, _Sink, workers=workers, block=BLOCK, serial_below=SERIAL_BELOW_BYTES,
                             offsets=True)
    with gc_paused():
        rc = _merge(path, parts, torn)
    if torn is not None:
        nemesis = _code(rc.processes, NEMESIS)
        if not bool((rc.process != nemesis).any()):  # (also no record at all)
            raise Unusual("a torn line with no client record before it")  # the record reader refuses it
        warn(warnings, torn.warning(path))
    return rc


def _merge(path: Path, parts: list[Part[Any]], torn: TornLine | None) -> RecordColumns:
    processes, fs = Interned(), Interned()
    columns: dict[str, list[npt.NDArray[Any]]] = {}
    for part in parts:
        arrays, proc_objects, f_objects = part.value
        for name, arr in arrays.items():
            if len(arr) and name in ("process", "f"):
                table, objects = (processes, proc_objects) if name == "process" else (fs, f_objects)
                arr = np.fromiter(map(table.code, objects), dtype=np.int32, count=len(objects))[arr]
            columns.setdefault(name, []).append(arr)
    c = {name: np.concatenate(arrs) for name, arrs in columns.items()}
    return RecordColumns(c["process"], processes.objects, c["type"], c["f"], fs.objects, c["time"], c["plain"],
                         c["offset"], path=path, torn_line=None if torn is None else torn.line)


@dataclass
class OpColumns:
    """Client operations in invocation order, one row each: the positions of the invocation
    and completion records (`done` -1: none), the outcome (0 ok, 1 fail, 2 info: an index
    into COMPLETIONS), and f as a code into `f_names` (the invocation's f as text). Records
    that are not part of an operation: `unmatched` completions and `nemesis` records."""

    records: RecordColumns
    inv: IntArray
    done: IntArray
    outcome: npt.NDArray[np.int8]
    f: npt.NDArray[np.int32]
    f_names: list[str]
    unmatched: IntArray
    nemesis: IntArray
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.inv)

    @property
    def process(self) -> npt.NDArray[np.int32]:
        return self.records.process[self.inv]

    @property
    def invoke(self) -> IntArray:
        if "invoke" not in self._cache:
            self._cache["invoke"] = self.records.time[self.inv]
        out: IntArray = self._cache["invoke"]
        return out

    @property
    def completed(self) -> npt.NDArray[np.bool_]:
        return self.done >= 0

    @property
    def complete(self) -> IntArray:
        """Completion times (0 where `completed` is False)."""
        if "complete" not in self._cache:
            self._cache["complete"] = np.where(self.completed, self.records.time[np.maximum(self.done, 0)], 0)
        out: IntArray = self._cache["complete"]
        return out

    def end_time(self) -> int:
        """The latest time of any record (0 for none)."""
        return int(self.records.time.max()) if len(self.records) else 0

    def client_processes(self) -> list[Any]:
        """The processes that invoked something, each once, in order of first invocation."""
        codes = self.process
        _, first = np.unique(codes, return_index=True)
        return [self.records.processes[int(codes[i])] for i in np.sort(first)]

    def operations(self, rows: Sequence[int] | IntArray) -> list[Op]:
        """The operations of these rows as `Op`s, their records parsed again (one at a time,
        each dropped once its fields are taken): what `pair_ops` gives for them."""
        rows = np.asarray(rows, dtype=np.int64)
        inv, done, fs, outcome = self.inv[rows], self.done[rows], self.f[rows], self.outcome[rows]
        times, f_names = self.records.time, self.f_names
        out: list[Op] = [None] * len(rows)  # type: ignore[list-item]
        order = np.argsort(inv, kind="stable")  # the file front to back
        for j, rec in zip(order.tolist(), self.records.iter_records(inv[order]), strict=True):
            i = int(inv[j])
            out[j] = Op(rec.get("process"), f_names[int(fs[j])], rec.get("key"), rec.get("value"), None, "info",
                        int(times[i]), None, None, rec.get("node"))
        has = np.flatnonzero(done >= 0)
        order = has[np.argsort(done[has], kind="stable")]
        for j, rec in zip(order.tolist(), self.records.iter_records(done[order]), strict=True):
            op = out[j]
            op.type, op.output, op.error = COMPLETIONS[int(outcome[j])], rec.get("value"), rec.get("error")
            op.complete = int(times[int(done[j])])
        return out

    def nemesis_records(self) -> list[dict[str, Any]]:
        """The nemesis records, in file order."""
        return self.records.records(self.nemesis)


def pair_columns(rc: RecordColumns, *, strict: bool = False) -> OpColumns:
    """Pair the records as `pair_ops` does. Strict: a record lacking process, type, f or a
    numeric time, or a client record of another type, is Unusual (the dict path then names
    it); lenient: a missing field is None, other types are ignored."""
    proc, kind, fcol = rc.process, rc.type, rc.f
    process_missing = _code(rc.processes, MISSING)
    f_missing = _code(rc.fs, MISSING)
    nemesis = _code(rc.processes, NEMESIS)
    is_nemesis = proc == nemesis if nemesis >= 0 else np.zeros(len(rc), dtype=bool)
    if strict:
        if (process_missing >= 0 or f_missing >= 0 or bool((kind == NO_TYPE).any()) or not bool(rc.plain.all())
                or bool(((kind < 0) & ~is_nemesis).any())):
            raise Unusual("a record lacking process, type, f or a numeric time, or of another type")
    elif process_missing >= 0:  # no process field: the process None
        none = _code(rc.processes, None)
        if none >= 0:
            rc = replace(rc, process=np.where(proc == process_missing, none, proc).astype(np.int32))
        else:
            rc = replace(rc, processes=[None if p is MISSING else p for p in rc.processes])
        proc = rc.process
    f_text = [str(None if f is MISSING else f) for f in rc.fs]
    names: dict[str, int] = {}
    f_lut = np.array([names.setdefault(t, len(names)) for t in f_text] or [0], dtype=np.int32)
    with gc_paused():
        recs = np.flatnonzero(~is_nemesis & (kind >= 0))
        order = recs[np.argsort(proc[recs], kind="stable")]
        p, t = proc[order], kind[order]
        is_inv = t == INVOKE
        after_inv = np.zeros(len(order), dtype=bool)  # the record before, of the same process, is an invocation
        after_inv[1:] = (p[1:] == p[:-1]) & is_inv[:-1]
        closing = np.flatnonzero(~is_inv & after_inv)
        done_of = np.full(len(rc), -1, dtype=np.int64)
        done_of[order[closing - 1]] = order[closing]
        unmatched = np.sort(order[~is_inv & ~after_inv])
        inv = recs[kind[recs] == INVOKE]
        done = done_of[inv]
        outcome = np.where(done >= 0, kind[np.maximum(done, 0)] - 1, INFO - 1).astype(np.int8)
    return OpColumns(rc, inv.astype(np.int64), done, outcome, f_lut[fcol[inv]], list(names), unmatched,
                     np.flatnonzero(is_nemesis))


def _code(objects: list[Any], value: Any) -> int:
    """The code of `value` in an interned table (the same object type: 1 is not True)."""
    for code, obj in enumerate(objects):
        if obj is value or (type(obj) is type(value) and obj == value):
            return code
    return -1


def read_op_columns(path: str | Path, *, strict: bool = False, workers: int | None = None,
                    warnings: list[str] | None = None) -> OpColumns:
    """`pair_columns(read_record_columns(path))`."""
    return pair_columns(read_record_columns(path, workers, warnings), strict=strict)
