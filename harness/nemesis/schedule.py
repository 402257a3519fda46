"""The fault schedule: when each fault starts, which family and kind it is, how long it lasts.

Computed up front from the seed (its own random source, so the client ops do not shift it):
the same seed and nemesis config give the same schedule. Targets are drawn when a fault starts,
from the event's own seed, so leader-relative targets follow the live cluster while random ones
stay deterministic.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.nemesis import registry


@dataclass(frozen=True)
class FaultEvent:
    """One scheduled fault: start at `at` seconds after the test start, heal after `duration`.

    `seed` drives the choice of targets at run time (random nodes), which keeps the choice
    deterministic while leader-relative targets still follow the live cluster."""

    at: float
    fault: str
    kind: str
    duration: float
    seed: int

    def describe(self) -> str:
        return self.fault if self.kind == self.fault else f"{self.fault}({self.kind})"


def fault_schedule(nemesis: Mapping[str, Any], seed: int, start: float, end: float) -> list[FaultEvent]:
    """Faults from `start` to `end - quiet` seconds.

    `interval` and `random` schedules run one fault at a time: at fixed intervals or after
    exponential gaps with mean `interval`; each lasts `duration`, cut short before the next.
    `mix` gives each fault family its own timeline (exponential gaps, `duration` each), so
    faults of different families overlap, as Jepsen's combined nemesis packages do. Every
    schedule ends `quiet` seconds before `end`: the cluster runs fault-free before the final
    heal and recovery check."""
    faults: Sequence[str] = nemesis.get("faults", [])
    if not faults:
        return []
    end = end - float(nemesis.get("quiet", 0.0))
    if nemesis.get("schedule", "interval") == "mix":
        return _mix(nemesis, seed, start, end)
    rng = random.Random(f"nemesis-{seed}")
    interval = float(nemesis.get("interval", 10.0))
    duration = float(nemesis.get("duration", 5.0))
    starts: list[float] = []
    t = start
    while t < end and len(starts) < MAX_EVENTS:
        starts.append(t)
        gap = interval if nemesis.get("schedule", "interval") == "interval" else rng.expovariate(1.0 / interval)
        t += max(gap, 0.2)
    events = []
    for i, at in enumerate(starts):
        fault = rng.choice(list(faults))
        kind = _kind(nemesis, fault, rng)
        nxt = starts[i + 1] if i + 1 < len(starts) else end
        dur = max(0.0, min(duration, nxt - at - 0.1, end - at))
        events.append(FaultEvent(round(at, 3), fault, kind, round(dur, 3), rng.randrange(2**31)))
    return events


#: Bound on a schedule's length (a soak of days at the shortest gap stays far below it).
MAX_EVENTS = 100_000


def _kind(nemesis: Mapping[str, Any], fault: str, rng: random.Random) -> str:
    field = registry.get(fault).kinds_field
    kinds = nemesis.get(field, []) if field else []
    return rng.choice(list(kinds)) if kinds else fault


def _mix(nemesis: Mapping[str, Any], seed: int, start: float, end: float) -> list[FaultEvent]:
    """One timeline per fault family, each from its own random source (adding a family does
    not move the others' faults); merged in time order."""
    interval = float(nemesis.get("interval", 10.0))
    duration = float(nemesis.get("duration", 5.0))
    events: list[FaultEvent] = []
    for fault in dict.fromkeys(nemesis.get("faults", [])):
        rng = random.Random(f"nemesis-{seed}-{fault}")
        t = start + rng.uniform(0.0, interval)
        count = 0
        while t < end and count < MAX_EVENTS:
            kind = _kind(nemesis, fault, rng)
            dur = max(0.0, min(duration, end - t))
            events.append(FaultEvent(round(t, 3), fault, kind, round(dur, 3), rng.randrange(2**31)))
            count += 1
            t += dur + max(rng.expovariate(1.0 / interval), 0.2)
    return sorted(events, key=lambda e: (e.at, e.fault))


SCHEDULE_FILE = "schedule.json"


def write_schedule(events: Sequence[FaultEvent], path: Path) -> None:
    """The schedule as the run played it (`faultline run --replay` plays it again)."""
    doc = {"events": [dataclasses.asdict(e) for e in events]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)


def read_schedule(path: Path) -> list[FaultEvent]:
    """A recorded schedule; ValueError (one line naming the file) if it is not one."""
    try:
        doc = json.loads(path.read_text())
        events = [
            FaultEvent(float(e["at"]), str(e["fault"]), str(e["kind"]), float(e["duration"]), int(e["seed"]))
            for e in doc["events"]
        ]
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a fault schedule: {type(e).__name__}: {e}") from None
    for i, ev in enumerate(events):
        try:
            registry.get(ev.fault)
        except KeyError as e:
            raise ValueError(f"{path}: event {i}: {e.args[0]}") from None
        if not (math.isfinite(ev.at) and math.isfinite(ev.duration)) or ev.at < 0 or ev.duration < 0:
            raise ValueError(f"{path}: event {i}: bad time (at {ev.at}, duration {ev.duration})")
    return events


def lanes(events: Sequence[FaultEvent]) -> list[list[FaultEvent]]:
    """Events split into sequences that never overlap in time, in order: one lane per fault
    family for a mix, one lane in all for the one-at-a-time schedules."""
    by_family: dict[str, list[FaultEvent]] = {}
    for ev in events:
        by_family.setdefault(ev.fault, []).append(ev)
    if all(_sequential(evs) for evs in by_family.values()) and not _sequential(events):
        return list(by_family.values())
    return [list(events)] if events else []


def _sequential(events: Sequence[FaultEvent]) -> bool:
    return all(a.at + a.duration <= b.at + 1e-9 for a, b in zip(events, events[1:], strict=False))
