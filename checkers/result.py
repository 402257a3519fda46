"""The verdict type every checker returns, shared by the harness and the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: A verdict: True (valid), False (an anomaly was found) or "unknown" (a checker gave up).
Verdict = bool | str

UNKNOWN = "unknown"


@dataclass
class CheckResult:
    """One checker's verdict and the evidence behind it (JSON-serialisable details)."""

    name: str
    valid: Verdict
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, **self.details}


def merge_verdicts(verdicts: list[Verdict]) -> Verdict:
    """False if any is False, else "unknown" if any is unknown, else True (Jepsen's merge)."""
    if any(v is False for v in verdicts):
        return False
    if any(v is not True for v in verdicts):
        return UNKNOWN
    return True
