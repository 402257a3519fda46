"""faultline's history.jsonl read straight into columns (`OpTable`), a block at a time.

The same operations as `pair(read_jsonl(path))` in `checkers.history`, without keeping a dict
per record or an `Operation` per operation: each block of lines is parsed (orjson), its fields
are interned into small tables and kept as numpy codes, and the records are released. Pairing
(each invocation with the next completion of its process) is done on the columns.

Anything unusual (a record that is not a JSON object, a missing field, an unhashable process,
key or value, ints mixed with floats or booleans among the values, a time or process of an odd
type, a number orjson could only give as a rounded float, a value nested too deeply, a pairing
error) raises `Unusual`: the caller then reads the file record by record, which reports errors
with their file and line as it always did. A torn last line (a killed run) after a client
record is skipped with the same warning as there.
"""

from __future__ import annotations

import codecs
import gc
import logging
import multiprocessing
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from checkers.history_text import BadLine, loads_line, warn
from checkers.linear.operation import TooDeep, freeze
from checkers.linear.table import FAIL, INFO, OK, OUT_TRUE, OUT_UNKNOWN, OpTable

log = logging.getLogger(__name__)

#: Bytes read at a time.
BLOCK = 1 << 23
#: Below this many bytes the file is read in this process: a worker costs a fork and the
#: transfer of its columns, more than it saves on a short history.
SERIAL_BELOW_BYTES = 64 << 20
_INTERNED = ("process", "f", "key", "value")
NEMESIS = "nemesis"
#: Record types as codes (anything else: -1).
_TYPE_CODES: dict[Any, int] = {"invoke": 0, "ok": 1, "fail": 2, "info": 3}
_OP_TYPE = np.array([-1, OK, FAIL, INFO], dtype=np.int8)  # record type code -> table type
_MUTATIONS = frozenset({"write", "put", "append", "delete", "acquire", "release", "add"})
_CONTAINERS = (list, dict, set, frozenset, tuple)
#: Floats at least this large may be integers orjson rounded (beyond 64 bits), or times a
#: float does not hold exactly.
_EXACT_FLOAT = 2.0**53


class Unusual(Exception):
    """The file needs the record-by-record reader (for its error message, or its shape)."""


class HistoryReadError(Exception):
    """The file cannot be opened or read."""


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Millions of short-lived dicts make the cyclic collector rescan everything alive again
    and again (it more than doubles the parse time); none of them can form a cycle."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Interned:
    """Objects of one field, each distinct one (==) once, by first appearance."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.objects: list[Any] = []

    def add(self, col: list[Any]) -> npt.NDArray[np.int32]:
        codes, objects = self.codes, self.objects
        for v in dict.fromkeys(col):  # TypeError if unhashable
            if v not in codes:
                if type(v) is float and not -_EXACT_FLOAT < v < _EXACT_FLOAT:
                    raise Unusual("a float beyond 2**53 (an integer orjson rounded?)")
                codes[v] = len(objects)
                objects.append(v)
        return np.fromiter(map(codes.__getitem__, col), dtype=np.int32, count=len(col))

    def code(self, v: Any) -> int:
        c = self.codes.get(v)
        if c is None:
            c = self.codes[v] = len(self.objects)
            self.objects.append(v)
        return c


def _frozen(v: Any) -> Any:
    if type(v) is list:
        t = tuple(v)
        for x in t:
            if isinstance(x, _CONTAINERS):
                return freeze(v)
        return t
    return freeze(v)


class _Columns:
    """The records read so far, as codes; one list of arrays per field (one per block)."""

    def __init__(self) -> None:
        self.process = _Interned()
        self.f = _Interned()
        self.key = _Interned()
        self.value = _Interned()
        self.blocks: dict[str, list[npt.NDArray[Any]]] = {
            n: [] for n in ("process", "type", "f", "key", "value", "time", "timed")
        }
        self.value_types: set[type] = set()
        self.count = 0

    def add(self, recs: list[Any]) -> None:
        try:
            processes = [d.get("process") for d in recs]
            types = [d.get("type") for d in recs]
            fs = [d.get("f") for d in recs]
            keys = [d.get("key") for d in recs]
            values = [d.get("value") for d in recs]
            times = [d.get("time") for d in recs]
        except AttributeError:
            raise Unusual("a record is not a JSON object") from None
        vtypes = set(map(type, values))
        try:
            if vtypes & {list, dict}:
                values = [_frozen(v) if type(v) in (list, dict) else v for v in values]
            self.value_types |= vtypes
            if len(self.value_types & {int, float, bool}) > 1:
                raise Unusual("values mix ints, floats and booleans")
            b = self.blocks
            try:
                b["process"].append(self.process.add(processes))
                b["type"].append(np.fromiter(map(_TYPE_CODES.get, types, repeat(-1)), dtype=np.int8,
                                             count=len(types)))
                b["f"].append(self.f.add(fs))
                try:
                    b["key"].append(self.key.add(keys))
                except TypeError:  # list keys: as tuples
                    b["key"].append(self.key.add([_frozen(k) if type(k) in (list, dict) else k for k in keys]))
                b["value"].append(self.value.add(values))
            except TypeError:
                raise Unusual("an unhashable process, type, f, key or value") from None
        except TooDeep:
            raise Unusual("a value nested too deeply") from None
        self._add_times(times)
        self.count += len(recs)

    def _add_times(self, times: list[Any]) -> None:
        b = self.blocks
        ttypes = set(map(type, times))
        if not ttypes <= {int, float, type(None)}:
            raise Unusual("a time that is not a number")  # (booleans included)
        t = np.array(times) if type(None) not in ttypes else None
        if t is not None and t.dtype.kind == "i" and len(t):
            b["time"].append(t.astype(np.int64))
            b["timed"].append(np.ones(len(times), dtype=bool))
        elif t is not None and t.dtype.kind == "f":
            if len(t) and float(np.abs(t).max()) >= _EXACT_FLOAT:
                raise Unusual("a time beyond 2**53")  # a float would not hold it exactly
            b["time"].append(t)
            b["timed"].append(np.ones(len(times), dtype=bool))
        else:  # some records without a time (or numbers beyond 64 bits): kept as floats
            if any(x is not None and not -_EXACT_FLOAT < x < _EXACT_FLOAT for x in times):
                raise Unusual("a time beyond 2**53")  # a float would not hold it exactly
            timed = [x is not None for x in times]
            b["time"].append(np.array([0 if x is None else x for x in times], dtype=np.float64))
            b["timed"].append(np.array(timed, dtype=bool))

    def finish(self, lines: int, torn: tuple[int, bytes] | None) -> _Range:
        arrays: dict[str, npt.NDArray[Any]] = {}
        dtype: Any
        for name, dtype in (("process", np.int32), ("type", np.int8), ("f", np.int32),
                            ("key", np.int32), ("value", np.int32), ("time", np.int64),
                            ("timed", bool)):
            parts = self.blocks.pop(name)
            if name == "time" and any(p.dtype == np.float64 for p in parts):
                dtype = np.float64
            arrays[name] = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
        objects = {name: getattr(self, name).objects for name in _INTERNED}
        return _Range(arrays, objects, self.value_types, lines, torn, self.count)


@dataclass
class _Range:
    """One byte range of the file read into columns (codes local to the range)."""

    arrays: dict[str, npt.NDArray[Any]]
    objects: dict[str, list[Any]]
    value_types: set[type]
    lines: int
    torn: tuple[int, bytes] | None  # (line number within the range, text)
    records: int


def read_jsonl_table(path: str | Path, workers: int | None = None, warnings: list[str] | None = None) -> OpTable:
    """Read and pair a history.jsonl; raises HistoryReadError or Unusual. A large file is
    read in byte ranges by forked worker processes (one per core; `workers` overrides). The
    warning for a torn last line goes to `warnings` if given, else to the log."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise HistoryReadError(str(e)) from None
    if not stat.S_ISREG(st.st_mode):  # (a FIFO would block the read)
        raise HistoryReadError("not a regular file")
    size = st.st_size
    if workers is None:
        workers = 1 if size < SERIAL_BELOW_BYTES else os.cpu_count() or 1
    ranges = _line_ranges(path, size, workers) if workers > 1 else [(0, size)]
    if len(ranges) == 1:
        parts = [_read_range(path, 0, size)]
    else:
        try:
            with ProcessPoolExecutor(len(ranges), mp_context=multiprocessing.get_context("fork")) as pool:
                futures = [pool.submit(_read_range, path, a, b) for a, b in ranges]
                parts = [f.result() for f in futures]
        except (BrokenProcessPool, OSError) as e:  # no fork, or a worker died: once more here
            log.warning("%s: reader processes failed (%s); reading in this process", path, e)
            parts = [_read_range(path, 0, size)]
    with _gc_paused():
        merged, torn = _merge(path, parts)
        table = _pair(merged)
    if torn is not None:
        if not len(table):
            raise Unusual("a torn line with no operation before it")
        warn(warnings, torn)
    return table


def _line_ranges(path: Path, size: int, n: int) -> list[tuple[int, int]]:
    """n byte ranges of about equal size, each starting at the start of a line."""
    cuts = [0]
    try:
        with path.open("rb") as fh:
            for k in range(1, n):
                fh.seek(max(size * k // n - 1, cuts[-1]))
                fh.readline()  # to the end of the line the cut falls in
                cuts.append(min(fh.tell(), size))
    except OSError as e:
        raise HistoryReadError(str(e)) from None
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a] or [(0, size)]


def _read_range(path: Path, start: int, end: int) -> _Range:
    """Parse the lines of bytes [start, end) (start at a line start) into columns."""
    cols = _Columns()
    torn: tuple[int, bytes] | None = None  # a bad line that may turn out to be the last one
    lineno = 0
    with _gc_paused():
        try:
            fh = path.open("rb")
        except OSError as e:
            raise HistoryReadError(str(e)) from None
        with fh:
            fh.seek(start)
            pos, carry = start, b""
            if start == 0 and fh.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
                pos = len(codecs.BOM_UTF8)  # a UTF-8 BOM before the first line: not part of it
            else:
                fh.seek(start)
            while True:
                try:
                    block = fh.read(min(BLOCK, end - pos)) if pos < end else b""
                except OSError as e:
                    raise HistoryReadError(str(e)) from None
                pos += len(block)
                data = carry + block
                if block:
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        carry = data
                        continue
                    lines, carry = data[:cut].split(b"\n"), data[cut + 1:]
                else:
                    lines, carry = ([data] if data else []), b""
                torn = _parse_block(cols, lines, lineno, torn)
                lineno += len(lines)
                if not block:
                    break
        return cols.finish(lineno, torn)


def _merge(path: Path, parts: list[_Range]) -> tuple[dict[str, Any], str | None]:
    """The ranges' columns in file order, with codes of one table per field; the torn-line
    check across ranges (only the file's last non-blank line may be torn), and the warning
    to give if there is one."""
    tables = {name: _Interned() for name in _INTERNED}
    value_types: set[type] = set()
    columns: dict[str, list[npt.NDArray[Any]]] = {name: [] for name in parts[0].arrays}
    torn: tuple[int, bytes] | None = None
    lines = 0
    for part in parts:
        if torn is not None and part.records:
            raise Unusual("a bad line before the last one")
        if part.torn is not None:
            torn = (lines + part.torn[0], part.torn[1])
        lines += part.lines
        value_types |= part.value_types
        for name, arr in part.arrays.items():
            if name in tables and len(arr):
                lut = np.fromiter(map(tables[name].code, part.objects[name]), dtype=np.int32)
                arr = lut[arr]
            columns[name].append(arr)
    if len(value_types & {int, float, bool}) > 1:
        raise Unusual("values mix ints, floats and booleans")
    note = None
    if torn is not None:
        n, line = torn
        try:
            loads_line(line)
        except BadLine as e:
            if not e.torn:  # written wrong, not cut short: an error the record reader reports
                raise Unusual("a corrupt last line") from None
            note = f"{path}:{n}: ignoring truncated last line ({e.reason})"
        else:  # json reads what orjson does not (a huge integer): let the record reader judge
            raise Unusual("orjson and json disagree on a line")
    merged: dict[str, Any] = {}
    for name, arrs in columns.items():
        if name == "time" and any(a.dtype == np.float64 for a in arrs):
            arrs = [a.astype(np.float64) for a in arrs]
        merged[name] = np.concatenate(arrs)
    merged.update({f"{name}_table": tables[name] for name in _INTERNED})
    return merged, note


def _parse_block(
    cols: _Columns, lines: list[bytes], first: int, torn: tuple[int, bytes] | None
) -> tuple[int, bytes] | None:
    """Parse one block's lines into `cols`; returns the torn-line candidate (1-based line
    number, text) if the block ends with a line that does not parse."""
    nonblank = [line for line in lines if line]
    if not nonblank:
        return torn
    if torn is not None:
        raise Unusual("a bad line before the last one")
    try:
        recs = list(map(orjson.loads, nonblank))
    except orjson.JSONDecodeError:
        recs, torn = _parse_lines(lines, first)
    cols.add(recs)
    return torn


def _parse_lines(lines: list[bytes], first: int) -> tuple[list[Any], tuple[int, bytes] | None]:
    """One line at a time: the records, and the one bad line if it is the block's last."""
    recs: list[Any] = []
    torn: tuple[int, bytes] | None = None
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        if torn is not None:
            raise Unusual("a bad line before the last one")
        try:
            recs.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            torn = (first + n + 1, line)
    return recs, torn


def _pair(cols: dict[str, Any]) -> OpTable:
    proc, rtype, f, key, value = cols["process"], cols["type"], cols["f"], cols["key"], cols["value"]
    time, timed = cols["time"], cols["timed"]
    processes: _Interned = cols["process_table"]
    f_table: _Interned = cols["f_table"]
    values: _Interned = cols["value_table"]
    n_rec = len(proc)
    if any(type(p) is not int and type(p) is not str for p in processes.objects):
        raise Unusual("a process that is not an integer or a string")
    nemesis = processes.codes.get(NEMESIS, -1)
    if nemesis >= 0 and not isinstance(processes.objects[nemesis], str):
        raise Unusual("a process equal to 'nemesis' that is not the string")
    client = proc != nemesis
    fs = f_table.objects
    none_process = processes.codes.get(None, -1)
    bad_f = np.array([not (isinstance(x, str) and x) for x in fs] or [True])
    if ((rtype < 0) | (proc == none_process) | bad_f[f])[client].any():
        raise Unusual("a record without a good process, type or f")
    use_time = bool(timed[client].all()) and bool(client.any())
    index = np.arange(n_rec, dtype=np.int64)
    pos = time.astype(np.float64) if use_time else index.astype(np.float64)
    stamp = np.where(timed, np.trunc(time).astype(np.int64) if time.dtype == np.float64 else time, index)
    recs = np.flatnonzero(client)
    # pairing: each process's records in file order must alternate invoke, completion
    order = recs[np.argsort(proc[recs], kind="stable")]
    p, t = proc[order], rtype[order]
    same_next = np.zeros(len(order), dtype=bool)
    same_next[:-1] = p[1:] == p[:-1]
    is_inv = t == 0
    after_inv = np.zeros(len(order), dtype=bool)
    after_inv[1:] = same_next[:-1] & is_inv[:-1]
    if (~is_inv & ~after_inv).any():
        raise Unusual("a completion without an open invocation")
    paired = np.zeros(len(order), dtype=bool)
    paired[:-1] = is_inv[:-1] & same_next[:-1] & ~is_inv[1:]
    if (is_inv[:-1] & same_next[:-1] & is_inv[1:]).any():
        raise Unusual("an invocation twice")
    j = np.flatnonzero(paired)
    if (f[order[j]] != f[order[j + 1]]).any():
        raise Unusual("a completion of another function")
    done_of = np.full(n_rec, -1, dtype=np.int64)
    done_of[order[j]] = order[j + 1]
    inv = recs[rtype[recs] == 0]  # in file order: operation ids
    done = done_of[inv]
    has_done = done >= 0
    d = np.where(has_done, done, 0)
    op_type = np.where(has_done, _OP_TYPE[rtype[d]], INFO).astype(np.int8)
    op_f = f[inv]
    f_cas = f_table.codes.get("cas", -1)
    mutation = np.array([isinstance(x, str) and x in _MUTATIONS for x in fs] or [False])
    none_value = values.code(None)
    is_ok = op_type == OK
    output = np.where(is_ok, value[d], OUT_UNKNOWN)
    output = np.where(is_ok & mutation[op_f], none_value, output)
    output = np.where(is_ok & (op_f == f_cas), OUT_TRUE, output)
    done_pos = np.where(has_done, pos[d], np.nan)
    return OpTable(
        process=proc[inv].astype(np.int64), f=op_f.astype(np.int64), key=key[inv].astype(np.int64),
        value=value[inv].astype(np.int64), output=output.astype(np.int64),
        type=op_type.astype(np.int64), invoke=stamp[inv], complete=np.where(has_done, stamp[d], 0),
        call_pos=pos[inv], return_pos=np.where(is_ok, done_pos, np.inf), done_pos=done_pos,
        processes=processes.objects, fs=fs, keys=cols["key_table"].objects, values=values.objects,
    )
