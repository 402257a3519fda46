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
        Row i is the i-th operation, and `operations()` gives back the very objects (so the
        tables only serve the codes). Everything is interned by equality, as a dict groups
        keys and as the models compare values; raises TypeError on an unhashable one."""
        ops = list(ops)
        n = len(ops)
        interned = {name: _Codes() for name in ("process", "f", "key", "value")}
        fs = [o.f for o in ops]
        outputs: list[Any] = []
        vcode = interned["value"].code
        for f, o in zip(fs, ops, strict=True):
            out = o.output
            if out is UNKNOWN:
                outputs.append(OUT_UNKNOWN)
            elif f == "cas" and (out is True or out is False):
                outputs.append(OUT_TRUE if out else OUT_FALSE)
            else:
                outputs.append(vcode(out))
        done = [o.done_pos for o in ops]
        complete = [o.complete for o in ops]
        return cls(
            process=interned["process"].codes([o.process for o in ops]),
            f=interned["f"].codes(fs),
            key=interned["key"].codes([o.key for o in ops]),
            value=interned["value"].codes([o.value for o in ops]),
            output=np.array(outputs, dtype=np.int64).reshape(n),
            type=np.array([TYPE_NAMES.index(o.type) for o in ops], dtype=np.int64).reshape(n),
            invoke=np.array([o.invoke for o in ops], dtype=np.int64).reshape(n),
            complete=np.array([0 if c is None else c for c in complete], dtype=np.int64).reshape(n),
            call_pos=np.array([o.call_pos for o in ops], dtype=np.float64).reshape(n),
            return_pos=np.array([o.return_pos for o in ops], dtype=np.float64).reshape(n),
            done_pos=np.array([np.nan if d is None else d for d in done], dtype=np.float64).reshape(n),
            processes=interned["process"].objects, fs=interned["f"].objects,
            keys=interned["key"].objects, values=interned["value"].objects, source=ops,
        )


class _Codes:
    """Distinct objects (==) of one field, by first appearance."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.objects: list[Any] = []

    def code(self, v: Any) -> int:
        c = self.index.get(v)
        if c is None:
            c = self.index[v] = len(self.objects)
            self.objects.append(v)
        return c

    def codes(self, col: list[Any]) -> IntArray:
        for v in dict.fromkeys(col):
            self.code(v)
        return np.fromiter(map(self.index.__getitem__, col), dtype=np.int64, count=len(col))
