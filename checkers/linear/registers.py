"""Register partitions from an `OpTable`, without building `Operation`s.

For `CasRegister`, `Register` and `KV` (exactly those: a subclass may step differently) this
does on integer codes what `prepare`, `model.partition` and `model.simplify` do on operation
lists, with the same results, and builds the input of the register engine (`jit.py`). Values
are compared as the model compares them (==): codes come from a table keyed by the values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from checkers.linear import jit
from checkers.linear.model import Model
from checkers.linear.models import KV, CasRegister, Register
from checkers.linear.operation import Operation
from checkers.linear.table import FAIL, INFO, OK, OUT_FALSE, OUT_TRUE, OUT_UNKNOWN, OpTable

Rows = npt.NDArray[np.int64]
_FS = ("read", "write", "cas", "delete")  # in the order of jit.READ, WRITE, CAS, DELETE


def fits(model: Model) -> bool:
    return type(model) in (CasRegister, Register, KV)


@dataclass
class RegisterPart:
    """One partition: its rows of the table (prepared and simplified, in invocation order).

    A partition with a cas whose value is not [expected, new] is left to the operation-list
    path whole: `simplified` is False, `rows` are only prepared, `engine_input` gives None.
    """

    key: Any
    rows: Rows
    simplified: bool
    load: Callable[[], list[Operation]]
    #: The register engine's input, or None when the partition has ops the engine does not
    #: model (another function, a cas without two values, an ok cas without a known outcome).
    engine_input: Callable[[], jit.RegisterOps | None]
    zone_applicable: Callable[[], bool]


class _Codes:
    """Value codes for the engine: the table's codes (values equal under == share one), plus
    codes for the initial value, None and the parts of each cas's [expected, new]."""

    def __init__(self, table: OpTable, initial: Any) -> None:
        index: dict[Any, int] = {}
        canon = np.arange(len(table.values), dtype=np.int64)
        for n, v in enumerate(table.values):
            c = index.setdefault(v, n)
            canon[n] = c
        self.index = index
        self.canon = canon  # table code -> the code of the first equal value
        self.extra = len(table.values)
        self.initial = self.code(initial)
        self.none = self.code(None)
        f_cas = table.f_code("cas")
        used = np.unique(table.value[table.f == f_cas]) if f_cas >= 0 else np.zeros(0, np.int64)
        self.cas_a = np.full(len(table.values), -1, dtype=np.int64)
        self.cas_b = np.full(len(table.values), -1, dtype=np.int64)
        for c in used.tolist():
            v = table.values[c]
            if isinstance(v, tuple) and len(v) == 2:
                self.cas_a[c] = self.code(v[0])
                self.cas_b[c] = self.code(v[1])

    def code(self, v: Any) -> int:
        c = self.index.get(v)
        if c is None:
            c = self.index[v] = self.extra
            self.extra += 1
        return c


def partitions(model: Model, table: OpTable) -> Iterator[RegisterPart]:
    """What `[model.simplify(p) for p in model.partition(prepare(model, ops))]` gives, as rows,
    in the same order. Raises TypeError when a value is unhashable (the caller then takes the
    operation-list path)."""
    assert isinstance(model, CasRegister)
    codes = _Codes(table, model.initial)
    f_read = table.f_code("read")
    kept = (table.type != FAIL) & ~((table.type == INFO) & (table.f == f_read))
    rows = np.flatnonzero(kept)
    if isinstance(model, KV):
        keys = table.key[rows]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        groups = np.split(rows[order], starts[1:]) if len(rows) else []
        groups.sort(key=lambda g: int(g[0]))  # by first appearance, as _by_key orders them
    else:
        groups = [rows]
    f_cas = table.f_code("cas")
    for g in groups:
        if ((table.f[g] == f_cas) & (codes.cas_a[table.value[g]] < 0)).any():
            yield RegisterPart(
                key=None, rows=g, simplified=False, load=partial(table.operations, g),
                engine_input=_no_engine, zone_applicable=_not_applicable,
            )
            continue
        part = _simplify(model, table, codes, g)
        key = table.key_of(int(part[0])) if isinstance(model, KV) and len(part) else None
        yield RegisterPart(
            key=key, rows=part, simplified=True,
            load=partial(table.operations, part),
            engine_input=partial(_engine_input, table, codes, part),
            zone_applicable=partial(_zone_applicable, table, codes, part),
        )


def _no_engine() -> None:
    return None


def _not_applicable() -> bool:
    return False


def _simplify(model: CasRegister, table: OpTable, codes: _Codes, rows: Rows) -> Rows:
    """`CasRegister.simplify` on codes: drop crashed ops whose result nobody observes."""
    if not len(rows):
        return rows
    f = table.f[rows]
    f_cas, f_read, f_write = table.f_code("cas"), table.f_code("read"), table.f_code("write")
    is_cas = f == f_cas
    out = table.output[rows]
    if (is_cas & (out == OUT_FALSE)).any():
        return rows
    vals = codes.canon[table.value[rows]]
    canon_out = np.where(out >= 0, codes.canon[np.maximum(out, 0)], -1)
    is_read_obs = (f == f_read) & (out != OUT_UNKNOWN)
    if model.initial is not None:
        is_read_obs &= canon_out != codes.none
    info = table.type[rows] == INFO
    result = np.where(f == f_write, vals, codes.none)
    result = np.where(is_cas, codes.cas_b[table.value[rows]], result)
    expected = codes.cas_a[table.value[rows]]
    keep = np.ones(len(rows), dtype=bool)
    for _ in range(3):  # dropping a crashed cas may unobserve its expected value
        observed = np.union1d(canon_out[is_read_obs & keep], expected[is_cas & keep])
        new_keep = keep & (~info | np.isin(result, observed))
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    return rows[keep]


def _zone_applicable(table: OpTable, codes: _Codes, rows: Rows) -> bool:
    """`zones.applicable`: only reads and writes, each write of a value of its own."""
    f = table.f[rows]
    f_read, f_write = table.f_code("read"), table.f_code("write")
    if not np.isin(f, [f_read, f_write]).all():
        return False
    written = codes.canon[table.value[rows][f == f_write]]
    return bool(len(np.unique(written)) == len(written) and not (written == codes.initial).any())


def _engine_input(table: OpTable, codes: _Codes, rows: Rows) -> jit.RegisterOps | None:
    n = len(rows)
    kind = np.full(n, -1, dtype=np.int64)
    f = table.f[rows]
    for k, name in enumerate(_FS):
        c = table.f_code(name)
        if c >= 0:
            kind[f == c] = k
    if (kind < 0).any():
        return None
    vcode = table.value[rows]
    out = table.output[rows]
    typ = table.type[rows]
    is_cas = kind == jit.CAS
    ok = typ == OK
    # an ok cas is an observation: swapped, or (porcupine's etcd logs) compared and not swapped
    cas_out = np.where(out == OUT_TRUE, jit.SWAPPED, np.where(out == OUT_FALSE, jit.NOT_SWAPPED, jit.ANY))
    if (is_cas & ok & (cas_out == jit.ANY)).any():
        return None
    canon_out = np.where(out >= 0, codes.canon[np.maximum(out, 0)], jit.ANY)
    read_any = canon_out < 0
    if codes.initial != codes.none:
        read_any |= canon_out == codes.none  # knossos: a nil read says nothing here
    a = np.where(kind == jit.READ, np.where(read_any, jit.ANY, canon_out), codes.canon[vcode])
    a = np.where(is_cas, codes.cas_a[vcode], a)
    b = np.where(is_cas, codes.cas_b[vcode], -1)
    # events: calls, and returns of ok ops, by position (calls first at equal times)
    idx = np.arange(n, dtype=np.int64)
    ok_idx = idx[ok]
    pos = np.concatenate((table.call_pos[rows], table.return_pos[rows][ok]))
    ev = np.concatenate((idx * 2, ok_idx * 2 + 1))
    order = np.lexsort((ev >> 1, ev & 1, pos))
    return jit.RegisterOps(
        kind=kind.tolist(), a=a.tolist(), b=b.tolist(), out=np.where(is_cas, cas_out, jit.ANY).tolist(),
        info=(typ == INFO).tolist(), events=ev[order].tolist(),
        initial=codes.initial, none=codes.none,
    )
