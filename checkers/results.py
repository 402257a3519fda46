"""results.json read back: the run's verdict and each checker's entry, typed.

What the harness, the campaigns (soak, zoo, JUnit) and the reports need to know about a
checked run is answered here, once: the verdict, who found what (anomaly kinds are the
checker's name, or `raft-safety:<violation kind>` for Raft safety violations, so a summary
counts "two leaders in one term" apart from "stale read"), the throughput, when the first
anomaly happened, and the one-line message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.result import UNKNOWN, CheckResult, Verdict, verdict_of

RESULTS_FILE = "results.json"
#: Checkers that describe a run and never judge it.
DESCRIPTIVE = ("stats",)


class ResultsError(ValueError):
    """A results.json that cannot be read; the message names the file, then why."""

    def __init__(self, source: str | Path, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.reason = reason


@dataclass
class Results:
    """One run's results.json: `valid` (True, False or "unknown"), the checkers' entries in
    file order, and the document as read (`raw`)."""

    valid: Verdict
    checkers: dict[str, CheckResult] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, doc: Any, source: str = RESULTS_FILE) -> Results:
        """From a parsed results.json; a document that is not an object is a ResultsError."""
        if not isinstance(doc, dict):
            raise ResultsError(source, "top level is not an object")
        found = doc.get("checkers")
        entries = found.items() if isinstance(found, dict) else ()
        checkers = {str(name): CheckResult.from_json(str(name), entry) for name, entry in entries}
        return cls(verdict_of(doc.get("valid")), checkers, doc)

    @classmethod
    def load(cls, path: str | Path) -> Results:
        """Read a results.json (or a run folder's); missing, unreadable or not JSON is a
        ResultsError naming the file."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise ResultsError(path, "missing") from None
        except OSError as e:
            raise ResultsError(path, f"cannot read: {e.strerror or e}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ResultsError(path, f"not valid JSON ({e.msg} at line {e.lineno})") from None
        return cls.of(doc, str(path))

    def checker(self, name: str) -> CheckResult | None:
        return self.checkers.get(name)

    def caught_by(self) -> list[str]:
        """Names of the checkers that reported the run invalid."""
        return sorted(r.name for r in self.checkers.values() if r.valid is False and r.name not in DESCRIPTIVE)

    def unknown_checkers(self) -> list[str]:
        return sorted(r.name for r in self.checkers.values() if r.valid is not True and r.valid is not False)

    def anomaly_kinds(self) -> list[str]:
        """Sorted distinct kinds of what the checkers reported as invalid."""
        kinds: set[str] = set()
        for r in self.checkers.values():
            if r.valid is not False or r.name in DESCRIPTIVE:
                continue
            violations = r.violations() if r.name == "raft-safety" else []
            if violations:
                kinds.update(f"raft-safety:{v.get('kind', 'unknown')}" for v in violations)
            else:
                kinds.add(r.name)
        return sorted(kinds)

    @property
    def throughput(self) -> float | None:
        """ok operations per second, as the stats checker measured it."""
        stats = self.checker("stats")
        tp = stats.details.get("throughput") if stats is not None else None
        return float(tp) if isinstance(tp, int | float) and not isinstance(tp, bool) else None

    def op_count(self) -> int | None:
        """Client operations the stats checker counted ({f: {ok, fail, info}}), if it did."""
        stats = self.checker("stats")
        per_f = stats.details.get("ops") if stats is not None else None
        if not isinstance(per_f, dict) or not per_f:
            return None
        total = 0
        for counts in per_f.values():
            if not isinstance(counts, dict):
                return None
            total += sum(v for v in counts.values() if isinstance(v, int) and not isinstance(v, bool))
        return total

    def detection_s(self, boot_ts: float | None) -> float | None:
        """When the earliest anomaly any checker reports happened, in seconds since the start
        of the run (load start for history anomalies, first node boot for Raft safety
        violations); None if no checker located its finding in time."""
        times = []
        lin = self.checker("linearizability")
        if lin is not None and lin.valid is False:
            times.append(linearizability_detection_s(lin))
        safety = self.checker("raft-safety")
        if safety is not None and safety.valid is False:
            times.append(safety_detection_s(safety, boot_ts))
        known = [t for t in times if t is not None]
        return round(min(known), 3) if known else None

    def message(self) -> str:
        """One line: what the first invalid checker reported, else the first unknown one,
        else "valid"."""
        entries = self.checkers.values()
        invalid = next((r for r in entries if r.valid is False), None)
        if invalid is not None:
            return f"{invalid.name}: {invalid.message() or 'invalid'}"
        unknown = next((r for r in entries if r.valid is not True), None)
        if unknown is not None:
            return f"{unknown.name}: {unknown.message() or UNKNOWN}"
        if self.valid is True:
            return "valid"
        return "invalid" if self.valid is False else UNKNOWN


def linearizability_detection_s(entry: CheckResult) -> float | None:
    """Seconds since the load started at which the first op that cannot be linearized
    completed (history times are ns since the load started)."""
    cx = entry.details.get("counterexample")
    if not isinstance(cx, dict):
        return None
    ops = {op.get("id"): op for op in cx.get("ops") or [] if isinstance(op, dict)}
    wanted = [ops[i] for i in cx.get("unplaceable") or [] if i in ops] or list(ops.values())
    times = []
    for op in wanted:
        t = op.get("complete") if op.get("complete") is not None else op.get("invoke")
        if isinstance(t, int | float):
            times.append(float(t) / 1e9)
    return min(times) if times else None


def safety_detection_s(entry: CheckResult, boot_ts: float | None) -> float | None:
    """Seconds from the first node boot to the earliest violation (wall-clock event times)."""
    if boot_ts is None:
        return None
    times = [float(v["ts"]) - boot_ts for v in entry.violations() if isinstance(v.get("ts"), int | float)]
    return max(0.0, min(times)) if times else None
