"""The verdict of a linearizability check and its evidence (results.json item 6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checkers.linear.model import Model
from checkers.linear.operation import Operation
from checkers.linear.search import Failure
from checkers.result import CheckResult, Verdict

#: A counterexample shows at most this many of the latest linearized ops of each attempt.
TAIL = 50


@dataclass
class PartitionResult:
    key: Any
    valid: Verdict
    ops: int
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "valid": self.valid, "ops": self.ops}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class LinearResult:
    """valid is True, False or "unknown" (only when the time or memory budget ran out)."""

    valid: Verdict
    model: str
    partitions: list[PartitionResult] = field(default_factory=list)
    counterexample: dict[str, Any] | None = None
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "model": self.model,
            "partitions": [p.to_json() for p in self.partitions],
            "counterexample": self.counterexample,
        }

    def to_check_result(self, name: str = "linearizability") -> CheckResult:
        details = self.to_json()
        details.pop("valid")
        return CheckResult(name=name, valid=self.valid, details=details)


def counterexample(model: Model, key: Any, ops: list[Operation], failure: Failure) -> dict[str, Any]:
    """Evidence for the report: the longest partial linearizations and what got stuck."""
    longest: list[list[int]] = []
    states: list[list[Any]] = []
    shown: set[int] = {failure.op, *failure.pending}
    end_state: Any = model.init()
    for n, path in enumerate(failure.longest):
        steps = path[-TAIL:]
        if n == 0 and steps:
            end_state = steps[-1][1]
        longest.append([ops[i].id for i, _ in steps])
        states.append([model.describe_state(s) for _, s in steps])
        shown.update(i for i, _ in steps)
    unplaceable = [
        ops[i].id
        for i in failure.pending
        if ops[i].type == "ok" and not model.step_all(end_state, ops[i].input, ops[i].output)
    ]
    if ops[failure.op].id not in unplaceable:
        unplaceable.insert(0, ops[failure.op].id)
    stuck = ops[failure.op]
    message = (
        f"{model.describe_operation(stuck.input, stuck.output)} (op {stuck.id}, process "
        f"{stuck.process}) returned but cannot be linearized after any order of the ops before it"
        f"; state was {model.describe_state(end_state)!r}"
    )
    return {
        "key": key,
        "ops": [ops[i].to_json() for i in sorted(shown, key=lambda i: ops[i].call_pos)],
        "longest": longest,
        "states": states,
        "unplaceable": unplaceable,
        "message": message,
    }


def zone_counterexample(
    model: Model, key: Any, ops: list[Operation], involved: list[int], message: str
) -> dict[str, Any]:
    """Evidence from the zone test when no search was run to the end: the clashing ops."""
    return {
        "key": key,
        "ops": [ops[i].to_json() for i in involved],
        "longest": [],
        "states": [],
        "unplaceable": [ops[involved[0]].id] if involved else [],
        "message": message,
    }


def engine_counterexample(
    model: Model, key: Any, ops: list[Operation], op: int, pending: list[int]
) -> dict[str, Any]:
    """Evidence from the register engine when the searches found none in their budget: the op
    whose return no linearization reaches, and the ok ops pending then."""
    stuck = ops[op]
    message = (
        f"{model.describe_operation(stuck.input, stuck.output)} (op {stuck.id}, process "
        f"{stuck.process}) returned but cannot be linearized after any order of the ops before it, "
        "crashed ones placed or not (just-in-time search)"
    )
    return zone_counterexample(model, key, ops, [op, *pending], message)
