"""Operations a model cannot take, refused before any search: a cas whose value is not
[expected, new], a function the model does not know, a get that returned a number where
strings are kept. Such a history is bad input, not an anomaly, and the search would otherwise
fail in whatever way the model's code does (or, worse, judge it).

On a table each distinct value, key and output is judged once (one numpy pass per function),
so a long history costs little; the error names the first operation at fault by its row
(`Model.bad_input` judges a value and a key each on its own, not as a pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from checkers.linear.model import Model
from checkers.linear.operation import UNKNOWN, Input, Operation
from checkers.linear.table import OpTable


class OperationError(ValueError):
    """An operation the model cannot take; `op` is its id (its row in a table)."""

    def __init__(self, op: int, message: str) -> None:
        super().__init__(message)
        self.op = op


def validate(model: Model, history: Sequence[Operation] | OpTable) -> None:
    """Raise OperationError for the first operation (in invocation order) `model` cannot take."""
    if isinstance(history, OpTable) and history.source is None:
        _validate_table(model, history)
        return
    ops = history.source if isinstance(history, OpTable) else history
    assert ops is not None
    for op in ops:
        why = _bad_input(model, op.f, op.value, op.key)
        if why is None and op.output is not UNKNOWN and op.f in model.checked_outputs:
            why = model.bad_output(op.f, op.output)
        if why is not None:
            raise OperationError(op.id, f"{model.name}: {why}")


def _bad_input(model: Model, f: str, value: Any, key: Any) -> str | None:
    if model.functions is not None and f not in model.functions:
        return f"unsupported operation f={f!r}"
    if f in model.checked_inputs:
        return model.bad_input(Input(f, value, key))
    return None


def _validate_table(model: Model, table: OpTable) -> None:
    """The same on codes: each function's distinct values and keys (each with the first row
    that has it) and distinct outputs are judged, not every row."""
    fault: tuple[int, str] | None = None

    def found(row: int, why: str | None) -> None:
        nonlocal fault
        if why is not None and (fault is None or row < fault[0]):
            fault = (row, why)

    for code, f in enumerate(table.fs):
        rows = np.flatnonzero(table.f == code)
        if not len(rows):
            continue  # a nemesis's or a completion's f only
        if model.functions is not None and f not in model.functions:
            found(int(rows[0]), f"unsupported operation f={f!r}")
            continue
        if f in model.checked_inputs:
            for column, size in ((table.value, len(table.values)), (table.key, len(table.keys))):
                for row in _first_rows(column, rows, size):
                    found(row, model.bad_input(Input(f, table.values[table.value[row]], table.keys[table.key[row]])))
        if f in model.checked_outputs:
            outs = rows[table.output[rows] >= 0]
            for row in _first_rows(table.output, outs, len(table.values)):
                found(row, model.bad_output(f, table.values[table.output[row]]))
    if fault is not None:
        raise OperationError(fault[0], f"{model.name}: {fault[1]}")


def _first_rows(column: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], size: int) -> list[int]:
    """For each distinct code of `column` among `rows`, the first of those rows with it."""
    none = np.iinfo(np.int64).max
    first = np.full(size, none, dtype=np.int64)
    np.minimum.at(first, column[rows], rows)
    return first[first != none].tolist()
