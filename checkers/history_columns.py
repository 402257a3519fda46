"""faultline's history.jsonl read straight into columns (`OpTable`), a block at a time.

The same operations as `pair(read_jsonl(path))` in `checkers.history`, without keeping a dict
per record or an `Operation` per operation: each block of lines is parsed (orjson), its fields
are interned into small tables and kept as numpy codes, and the records are released. Pairing
(each invocation with the next completion of its process) is done on the columns.

Anything unusual (a record that is not a JSON object, a missing field, an unhashable process,
key or value, ints mixed with floats or booleans among the values, a pairing error) raises
`Unusual`: the caller then reads the file record by record, which reports errors with their
file and line as it always did. A torn last line (a killed run) is skipped with the same
warning as there.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from checkers.linear.operation import freeze
from checkers.linear.table import FAIL, INFO, OK, OUT_TRUE, OUT_UNKNOWN, OpTable

log = logging.getLogger(__name__)

#: Bytes read at a time.
BLOCK = 1 << 23
NEMESIS = "nemesis"
_TYPE_CODES = {"invoke": 0, "ok": 1, "fail": 2, "info": 3}
_OP_TYPE = np.array([-1, OK, FAIL, INFO], dtype=np.int8)  # record type code -> table type
_MUTATIONS = frozenset({"write", "put", "append", "delete", "acquire", "release", "add"})
_CONTAINERS = (list, dict, set, frozenset, tuple)


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
        self.type = _Interned()
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
        if vtypes & {list, dict}:
            values = [_frozen(v) if type(v) in (list, dict) else v for v in values]
        if set(map(type, keys)) & {list, dict}:
            keys = [_frozen(k) if type(k) in (list, dict) else k for k in keys]
        self.value_types |= vtypes
        numeric = self.value_types & {int, float, bool}
        if len(numeric) > 1:
            raise Unusual("values mix ints, floats and booleans")
        b = self.blocks
        try:
            b["process"].append(self.process.add(processes))
            b["type"].append(self.type.add(types))
            b["f"].append(self.f.add(fs))
            b["key"].append(self.key.add(keys))
            b["value"].append(self.value.add(values))
        except TypeError:
            raise Unusual("an unhashable process, type, f, key or value") from None
        ttypes = set(map(type, times))
        if ttypes <= {int}:
            try:
                b["time"].append(np.array(times, dtype=np.int64))
            except OverflowError:
                raise Unusual("a time beyond 64 bits") from None
            b["timed"].append(np.ones(len(times), dtype=bool))
        elif ttypes <= {int, float}:
            b["time"].append(np.array(times, dtype=np.float64))
            b["timed"].append(np.ones(len(times), dtype=bool))
        elif bool in ttypes:
            raise Unusual("a boolean time")
        else:
            timed = [type(t) in (int, float) for t in times]
            b["time"].append(np.array([t if ok else 0 for t, ok in zip(times, timed, strict=True)],
                                      dtype=np.float64))
            b["timed"].append(np.array(timed, dtype=bool))
        self.count += len(recs)

    def column(self, name: str, dtype: Any) -> npt.NDArray[Any]:
        parts = self.blocks.pop(name)
        if not parts:
            return np.zeros(0, dtype=dtype)
        if any(p.dtype == np.float64 for p in parts):
            dtype = np.float64 if name == "time" else dtype
        return np.concatenate(parts).astype(dtype, copy=False)


def read_jsonl_table(path: str | Path) -> OpTable:
    """Read and pair a history.jsonl; raises HistoryReadError or Unusual."""
    path = Path(path)
    cols = _Columns()
    torn: tuple[int, bytes] | None = None  # a bad line that may turn out to be the last one
    lineno = 0
    with _gc_paused():
        try:
            fh = path.open("rb")
        except OSError as e:
            raise HistoryReadError(str(e)) from None
        with fh:
            carry = b""
            while True:
                try:
                    block = fh.read(BLOCK)
                except OSError as e:
                    raise HistoryReadError(str(e)) from None
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
    if torn is not None:
        n, line = torn
        try:
            json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise Unusual("not UTF-8") from None
        except json.JSONDecodeError as e:
            log.warning("%s:%d: ignoring truncated last line (%s)", path, n, e.msg)
        else:  # pragma: no cover - orjson and json disagree: let the old reader judge
            raise Unusual("orjson and json disagree on a line")
    return _pair(cols)


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


def _pair(cols: _Columns) -> OpTable:
    proc = cols.column("process", np.int32)
    rtype_raw = cols.column("type", np.int32)
    f = cols.column("f", np.int32)
    key = cols.column("key", np.int32)
    value = cols.column("value", np.int32)
    time = cols.column("time", np.int64)
    timed = cols.column("timed", bool)
    n_rec = len(proc)
    # record types as codes: invoke 0, ok 1, fail 2, info 3, anything else -1
    type_lut = np.array([_TYPE_CODES.get(t, -1) if isinstance(t, str) else -1
                         for t in cols.type.objects] or [-1], dtype=np.int8)
    rtype = type_lut[rtype_raw] if n_rec else np.zeros(0, dtype=np.int8)
    nemesis = cols.process.codes.get(NEMESIS, -1)
    if nemesis >= 0 and not isinstance(cols.process.objects[nemesis], str):
        raise Unusual("a process equal to 'nemesis' that is not the string")
    client = proc != nemesis
    fs = cols.f.objects
    none_process = cols.process.codes.get(None, -1)
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
    f_cas = cols.f.codes.get("cas", -1)
    mutation = np.array([isinstance(x, str) and x in _MUTATIONS for x in fs] or [False])
    none_value = cols.value.code(None)
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
        processes=cols.process.objects, fs=fs, keys=cols.key.objects, values=cols.value.objects,
    )
