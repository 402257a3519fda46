"""What a stored run found, read from its results.json: anomaly kinds, unknown checkers,
throughput, and when the first anomaly happened. Pure functions of the recorded data.

Anomaly kinds are the checker's name, or `raft-safety:<violation kind>` for Raft safety
violations, so that a summary can count "two leaders in one term" apart from "stale read".
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Checkers that describe a run and never judge it.
DESCRIPTIVE = ("stats",)


def checkers(results: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    found = (results or {}).get("checkers")
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, dict)}


def anomaly_kinds(results: dict[str, Any] | None) -> list[str]:
    """Sorted distinct kinds of what the checkers reported as invalid."""
    kinds: set[str] = set()
    for name, res in checkers(results).items():
        if res.get("valid") is not False or name in DESCRIPTIVE:
            continue
        violations = res.get("violations")
        if name == "raft-safety" and isinstance(violations, list) and violations:
            kinds.update(
                f"raft-safety:{v.get('kind', 'unknown')}" for v in violations if isinstance(v, dict)
            )
        else:
            kinds.add(name)
    return sorted(kinds)


def unknown_checkers(results: dict[str, Any] | None) -> list[str]:
    return sorted(n for n, r in checkers(results).items() if r.get("valid") not in (True, False))


def caught_by(results: dict[str, Any] | None) -> list[str]:
    """Names of the checkers that reported the run invalid."""
    return sorted(
        n for n, r in checkers(results).items() if r.get("valid") is False and n not in DESCRIPTIVE
    )


def throughput(results: dict[str, Any] | None) -> float | None:
    tp = checkers(results).get("stats", {}).get("throughput")
    return float(tp) if isinstance(tp, int | float) and not isinstance(tp, bool) else None


def linearizability_detection_s(res: dict[str, Any]) -> float | None:
    """Seconds since the load started at which the first op that cannot be linearized
    completed (history times are ns since the load started)."""
    cx = res.get("counterexample")
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


def safety_detection_s(res: dict[str, Any], boot_ts: float | None) -> float | None:
    """Seconds from the first node boot to the earliest violation (wall-clock event times)."""
    if boot_ts is None:
        return None
    times = [
        float(v["ts"]) - boot_ts
        for v in res.get("violations") or []
        if isinstance(v, dict) and isinstance(v.get("ts"), int | float)
    ]
    return max(0.0, min(times)) if times else None


def first_boot_ts(run_dir: Path) -> float | None:
    """Wall-clock time of the earliest `boot` event of any node of a stored run."""
    earliest: float | None = None
    for events in sorted((run_dir / "nodes").glob("*/events.jsonl")):
        try:
            with events.open() as fh:
                for line in fh:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if (
                        isinstance(ev, dict)
                        and ev.get("type") == "boot"
                        and isinstance(ev.get("ts"), int | float)
                    ):
                        ts = float(ev["ts"])
                        earliest = ts if earliest is None else min(earliest, ts)
                        break  # a node's first boot is its first boot event
        except OSError as e:
            log.warning("%s: %s", events, e)
    return earliest


def detection_s(results: dict[str, Any] | None, boot_ts: float | None) -> float | None:
    """When the earliest anomaly any checker reports happened, in seconds since the start of
    the run (load start for history anomalies, first node boot for Raft safety violations);
    None if no checker located its finding in time."""
    found = checkers(results)
    times = []
    lin = found.get("linearizability")
    if lin is not None and lin.get("valid") is False:
        times.append(linearizability_detection_s(lin))
    safety = found.get("raft-safety")
    if safety is not None and safety.get("valid") is False:
        times.append(safety_detection_s(safety, boot_ts))
    known = [t for t in times if t is not None]
    return round(min(known), 3) if known else None


def message(results: dict[str, Any] | None) -> str:
    """One line saying what the first invalid (or unknown) checker reported."""
    for name, res in checkers(results).items():
        if res.get("valid") is True or name in DESCRIPTIVE:
            continue
        for key in ("message", "error"):
            if isinstance(res.get(key), str):
                return f"{name}: {res[key]}"
        cx = res.get("counterexample")
        if isinstance(cx, dict) and isinstance(cx.get("message"), str):
            return f"{name}: {cx['message']}"
        viol = res.get("violations")
        if isinstance(viol, list) and viol and isinstance(viol[0], dict):
            return f"{name}: {viol[0].get('message', 'violation')}"
        return f"{name}: {'invalid' if res.get('valid') is False else 'unknown'}"
    return "valid"
