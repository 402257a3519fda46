"""Paired operations as columns: one row per operation, in invocation order.

A long history (a soak run records millions of operations) does not fit in memory as
`Operation` objects: at ~500 bytes each, a million of them are half a gigabyte before the
checker starts. `OpTable` keeps the same facts in numpy arrays, with processes, keys and values
interned in small tables (each distinct value is one Python object); `operations()` builds
`Operation`s for the rows that need them (a partition the search must see, a counterexample).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from checkers.linear.operation import UNKNOWN, Operation

#: Operation types (`type` column).
OK, INFO, FAIL = 0, 1, 2
TYPE_NAMES = ("ok", "info", "fail")
#: Outputs that are not values (`output` column; values are codes >= 0).
OUT_UNKNOWN, OUT_TRUE, OUT_FALSE = -1, -2, -3

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass
class OpTable:
    """Operations as columns. `values[value[i]]` is the frozen input of row i; `output[i]` is
    a value code or one of OUT_UNKNOWN / OUT_TRUE / OUT_FALSE; `return_pos` is infinite for
    ops that did not complete ok, `done_pos` NaN for ops never completed (then `complete` is
    meaningless and `Operation.complete` is None)."""

    process: IntArray
    f: IntArray
    key: IntArray
    value: IntArray
    output: IntArray
    type: IntArray
    invoke: IntArray
    complete: IntArray
    call_pos: FloatArray
    return_pos: FloatArray
    done_pos: FloatArray
    processes: list[Any]
    fs: list[str]
    keys: list[Any]
    values: list[Any]
    #: The operations the table was made from, if it was (`from_operations`): `operations()`
    #: gives those very objects back.
    source: list[Operation] | None = None

    def __len__(self) -> int:
        return len(self.f)

    def f_code(self, name: str) -> int:
        """The code of an operation name, or -1 if no row has it."""
        try:
            return self.fs.index(name)
        except ValueError:
            return -1

    def key_of(self, row: int) -> Any:
        """The key of one row, as its operation has it."""
        return self.source[row].key if self.source is not None else self.keys[int(self.key[row])]

    def operations(self, rows: Sequence[int] | npt.NDArray[np.int64] | None = None) -> list[Operation]:
        """`Operation`s for `rows` (default: all), ids being row numbers."""
        idx = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        if self.source is not None:
            source = self.source
            return [source[i] for i in idx.tolist()]
        processes, fs, keys, values = self.processes, self.fs, self.keys, self.values
        out: list[Operation] = []
        cols = zip(
            idx.tolist(), self.process[idx].tolist(), self.f[idx].tolist(), self.key[idx].tolist(),
            self.value[idx].tolist(), self.output[idx].tolist(), self.type[idx].tolist(),
            self.invoke[idx].tolist(), self.complete[idx].tolist(), self.call_pos[idx].tolist(),
            self.return_pos[idx].tolist(), self.done_pos[idx].tolist(), strict=True,
        )
        for i, p, f, k, v, o, t, inv, comp, call, ret, done in cols:
            output: Any
            if o >= 0:
                output = values[o]
            else:
                output = UNKNOWN if o == OUT_UNKNOWN else o == OUT_TRUE
            op = Operation(
                id=i, process=processes[p], f=fs[f], value=values[v], output=output, invoke=inv,
                complete=None if done != done else comp, type=TYPE_NAMES[t],  # type: ignore[arg-type]
                key=keys[k], call_pos=call, return_pos=ret,
            )
            if done == done:  # not NaN
                op.done_pos = done
            out.append(op)
        return out

    @classmethod
    def from_operations(cls, ops: Iterable[Operation]) -> OpTable:
        """The table of operations already in memory (other formats, hand-made histories).
        Row i is the i-th operation, and `operations()` gives back the very objects. Processes,
        functions and keys are interned by equality (as a dict groups them), values by type and
        equality (so that 1 and True keep their own spelling). Raises TypeError on an
        unhashable one."""
        ops = list(ops)
        interned: dict[str, dict[Any, int]] = {"process": {}, "f": {}, "key": {}, "value": {}}
        tables: dict[str, list[Any]] = {name: [] for name in interned}

        def code(kind: str, v: Any) -> int:
            table = interned[kind]
            k = (type(v), v) if kind == "value" else v
            c = table.get(k)
            if c is None:
                c = table[k] = len(tables[kind])
                tables[kind].append(v)
            return c

        n = len(ops)
        cols = {name: np.zeros(n, dtype=np.int64) for name in
                ("process", "f", "key", "value", "output", "type", "invoke", "complete")}
        call_pos = np.zeros(n)
        return_pos = np.zeros(n)
        done_pos = np.full(n, np.nan)
        for i, o in enumerate(ops):
            cols["process"][i] = code("process", o.process)
            cols["f"][i] = code("f", o.f)
            cols["key"][i] = code("key", o.key)
            cols["value"][i] = code("value", o.value)
            out = o.output
            cols["output"][i] = (OUT_UNKNOWN if out is UNKNOWN else OUT_TRUE if out is True and o.f == "cas"
                                 else OUT_FALSE if out is False and o.f == "cas" else code("value", out))
            cols["type"][i] = TYPE_NAMES.index(o.type)
            cols["invoke"][i] = o.invoke
            cols["complete"][i] = 0 if o.complete is None else o.complete
            call_pos[i] = o.call_pos
            return_pos[i] = o.return_pos
            if o.done_pos is not None:
                done_pos[i] = o.done_pos
        return cls(
            process=cols["process"], f=cols["f"], key=cols["key"], value=cols["value"],
            output=cols["output"], type=cols["type"], invoke=cols["invoke"],
            complete=cols["complete"], call_pos=call_pos, return_pos=return_pos,
            done_pos=done_pos, processes=tables["process"], fs=tables["f"], keys=tables["key"],
            values=tables["value"], source=ops,
        )
