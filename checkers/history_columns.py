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

import logging
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from checkers.history_text import warn
from checkers.jsonl_blocks import (
    EXACT_FLOAT,
    HistoryReadError,
    Interned,
    Offsets,
    Part,
    Unusual,
    gc_paused,
    read_parts,
)
from checkers.linear.operation import TooDeep, freeze
from checkers.linear.table import FAIL, INFO, OK, OUT_TRUE, OUT_UNKNOWN, OpTable

__all__ = ["HistoryReadError", "Unusual", "read_jsonl_table"]

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
        self.process = Interned()
        self.f = Interned()
        self.key = Interned()
        self.value = Interned()
        self.blocks: dict[str, list[npt.NDArray[Any]]] = {
            n: [] for n in ("process", "type", "f", "key", "value", "time", "timed")
        }
        self.value_types: set[type] = set()
        self.count = 0

    def add(self, recs: list[Any], offsets: Offsets | None = None) -> None:
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
            if len(t) and float(np.abs(t).max()) >= EXACT_FLOAT:
                raise Unusual("a time beyond 2**53")  # a float would not hold it exactly
            b["time"].append(t)
            b["timed"].append(np.ones(len(times), dtype=bool))
        else:  # some records without a time (or numbers beyond 64 bits): kept as floats
            if any(x is not None and not -EXACT_FLOAT < x < EXACT_FLOAT for x in times):
                raise Unusual("a time beyond 2**53")  # a float would not hold it exactly
            timed = [x is not None for x in times]
            b["time"].append(np.array([0 if x is None else x for x in times], dtype=np.float64))
            b["timed"].append(np.array(timed, dtype=bool))

    def finish(self) -> _Range:
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
        return _Range(arrays, objects, self.value_types)


@dataclass
class _Range:
    """One byte range of the file read into columns (codes local to the range)."""

    arrays: dict[str, npt.NDArray[Any]]
    objects: dict[str, list[Any]]
    value_types: set[type]


def read_jsonl_table(path: str | Path, workers: int | None = None, warnings: list[str] | None = None) -> OpTable:
    """Read and pair a history.jsonl; raises HistoryReadError or Unusual. A large file is
    read in byte ranges by forked worker processes (one per core; `workers` overrides). The
    warning for a torn last line goes to `warnings` if given, else to the log."""
    path = Path(path)
    parts, torn = read_parts(path, _Columns, workers=workers, block=BLOCK, serial_below=SERIAL_BELOW_BYTES)
    with gc_paused():
        table = _pair(_merge(parts))
    if torn is not None:
        if not len(table):  # the record reader skips a torn line only after a client record
            raise Unusual("a torn line with no operation before it")
        warn(warnings, torn.warning(path))
    return table


def _merge(parts: list[Part[_Range]]) -> dict[str, Any]:
    """The ranges' columns in file order, with codes of one table per field."""
    tables = {name: Interned() for name in _INTERNED}
    value_types: set[type] = set()
    columns: dict[str, list[npt.NDArray[Any]]] = {name: [] for name in parts[0].value.arrays}
    for part in parts:
        value_types |= part.value.value_types
        for name, arr in part.value.arrays.items():
            if name in tables and len(arr):
                lut = np.fromiter(map(tables[name].code, part.value.objects[name]), dtype=np.int32)
                arr = lut[arr]
            columns[name].append(arr)
    if len(value_types & {int, float, bool}) > 1:
        raise Unusual("values mix ints, floats and booleans")
    merged: dict[str, Any] = {}
    for name, arrs in columns.items():
        if name == "time" and any(a.dtype == np.float64 for a in arrs):
            arrs = [a.astype(np.float64) for a in arrs]
        merged[name] = np.concatenate(arrs)
    merged.update({f"{name}_table": tables[name] for name in _INTERNED})
    return merged


def _pair(cols: dict[str, Any]) -> OpTable:
    proc, rtype, f, key, value = cols["process"], cols["type"], cols["f"], cols["key"], cols["value"]
    time, timed = cols["time"], cols["timed"]
    processes: Interned = cols["process_table"]
    f_table: Interned = cols["f_table"]
    values: Interned = cols["value_table"]
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
