"""The verdict type every checker returns, shared by the harness and the reports.

A `CheckResult` is also how a results.json entry is read back (`from_json`), so the one-line
account of a verdict (`message`) is written once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: A verdict: True (valid), False (an anomaly was found) or "unknown" (a checker gave up).
Verdict = bool | str

UNKNOWN = "unknown"

#: How many reasons an unknown verdict's message lists before "(+N more)".
_REASONS_SHOWN = 3


def verdict_of(value: Any) -> Verdict:
    """A recorded verdict: True and False stand, anything else is "unknown"."""
    return value if value is True or value is False else UNKNOWN


@dataclass
class CheckResult:
    """One checker's verdict and the evidence behind it (JSON-serialisable details)."""

    name: str
    valid: Verdict
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, **self.details}

    @classmethod
    def from_json(cls, name: str, entry: Any) -> CheckResult:
        """A checker's entry of results.json; an entry that is not an object is "unknown"."""
        if not isinstance(entry, dict):
            return cls(name, UNKNOWN, {"error": f"entry is not a JSON object: {type(entry).__name__}"})
        details = {k: v for k, v in entry.items() if k != "valid"}
        return cls(name, verdict_of(entry.get("valid")), details)

    def violations(self) -> list[dict[str, Any]]:
        """The reported violations (Raft safety and the like), as far as they are objects."""
        found = self.details.get("violations")
        return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []

    def message(self) -> str | None:
        """One line saying why the verdict is not plainly valid, or None if the checker said
        nothing: its own message, error or reason; for an anomaly the counterexample's
        message or the first violation; for an unknown the reasons its parts gave up."""
        if self.valid is True:
            return None
        for key in ("message", "error", "reason"):
            text = self.details.get(key)
            if isinstance(text, str) and text.strip():
                return _one_line(text)
        if self.valid is False:
            cx = self.details.get("counterexample")
            if isinstance(cx, dict) and isinstance(cx.get("message"), str) and cx["message"].strip():
                return _one_line(cx["message"])
            violations = self.violations()
            if violations:
                first = violations[0]
                text = str(first.get("message") or first.get("kind") or "violation")
                return _one_line(text) + _more(len(violations) - 1)
            return None
        parts = self.details.get("partitions")
        reasons = [
            f"{p.get('key')}: {p['reason']}"
            for p in (parts if isinstance(parts, list) else [])
            if isinstance(p, dict) and isinstance(p.get("reason"), str) and p["reason"]
        ]
        if reasons:
            return _one_line("; ".join(reasons[:_REASONS_SHOWN])) + _more(len(reasons) - _REASONS_SHOWN)
        stats = self.details.get("stats")
        if isinstance(stats, dict) and isinstance(stats.get("message"), str) and stats["message"].strip():
            return _one_line(stats["message"])
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _more(n: int) -> str:
    return f" (+{n} more)" if n > 0 else ""


def merge_verdicts(verdicts: list[Verdict]) -> Verdict:
    """False if any is False, else "unknown" if any is unknown, else True (Jepsen's merge)."""
    if any(v is False for v in verdicts):
        return False
    if any(v is not True for v in verdicts):
        return UNKNOWN
    return True
