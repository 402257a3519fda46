"""The harness-facing checker: `check(test, history, run_dir) -> CheckResult`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from checkers.history import ops_from_records
from checkers.linear.check import check
from checkers.linear.model import Model
from checkers.linear.registry import make_model
from checkers.result import CheckResult


class LinearizabilityChecker:
    """Judges a run's history.jsonl records against a model (`kv` unless told otherwise)."""

    name = "linearizability"

    def __init__(self, model: str | Model = "kv", timeout: float | None = 60.0) -> None:
        self.model = make_model(model) if isinstance(model, str) else model
        self.timeout = timeout

    def check(
        self, test: Mapping[str, Any], history: list[dict[str, Any]], run_dir: Path
    ) -> CheckResult:
        ops = ops_from_records(history, str(Path(run_dir) / "history.jsonl"))
        return check(self.model, ops, timeout=self.timeout).to_check_result(self.name)
