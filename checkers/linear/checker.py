"""Linearizability as a `Checker` of a stored run: its history.jsonl against a model.

A history that cannot be read, one with no client operations and one with an operation the
model cannot take get "unknown" with the reason, as `faultline check` refuses them (exit 3):
never a verdict about nothing.
"""

from __future__ import annotations

from checkers.history import HistoryError, invocation_where, ops_from_records, read_table
from checkers.linear.check import check
from checkers.linear.inputs import OperationError
from checkers.linear.model import Model
from checkers.linear.operation import Operation
from checkers.linear.registry import make_model
from checkers.linear.table import OpTable
from checkers.result import UNKNOWN, CheckResult
from checkers.rundata import StoredRun

#: Seconds before the search gives up with "unknown" (config: checker.linearizability_timeout).
DEFAULT_TIMEOUT = 120.0


class LinearizabilityChecker:
    """Judges a run's history.jsonl against a model (`kv` unless told otherwise)."""

    name = "linearizability"

    def __init__(self, model: str | Model = "kv", timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.model = make_model(model) if isinstance(model, str) else model
        self.timeout = timeout

    def check(self, run: StoredRun) -> CheckResult:
        try:
            history = _history(run)
        except HistoryError as e:
            return self._unknown(str(e))
        if not len(history):
            return self._unknown(f"{run.history_path}: no client operations")
        try:
            result = check(self.model, history, timeout=self.timeout)
        except OperationError as e:
            where = invocation_where(run.history_path, "jsonl", e.op) if run.history_path.exists() else "history.jsonl"
            return self._unknown(f"{where}: {e}")
        return result.to_check_result(self.name)

    def _unknown(self, why: str) -> CheckResult:
        return CheckResult(self.name, UNKNOWN, {"error": why})


def _history(run: StoredRun) -> OpTable | list[Operation]:
    """The run's file read as columns (what `faultline check` does: a long run is never held
    as one Python object per record), or the records a run was given in memory."""
    if run.history_path.exists():
        return read_table(run.history_path, "jsonl")
    return ops_from_records(run.history(), str(run.history_path))
