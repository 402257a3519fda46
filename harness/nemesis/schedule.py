"""The fault schedule: when each fault starts, which family and kind it is, how long it lasts.

Computed up front from the seed (its own random source, so the client ops do not shift it):
the same seed and nemesis config give the same schedule. Targets are drawn when a fault starts,
from the event's own seed, so leader-relative targets follow the live cluster while random ones
stay deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    """Faults from `start` to `end` seconds: at fixed intervals or at random (exponential gaps
    with mean `interval`); each lasts `duration`, cut short before the next and before `end`."""
    faults: Sequence[str] = nemesis.get("faults", [])
    if not faults:
        return []
    rng = random.Random(f"nemesis-{seed}")
    interval = float(nemesis.get("interval", 10.0))
    duration = float(nemesis.get("duration", 5.0))
    starts: list[float] = []
    t = start
    while t < end and len(starts) < 100_000:
        starts.append(t)
        gap = interval if nemesis.get("schedule", "interval") == "interval" else rng.expovariate(1.0 / interval)
        t += max(gap, 0.2)
    events = []
    for i, at in enumerate(starts):
        fault = rng.choice(list(faults))
        field = registry.get(fault).kinds_field
        kinds = nemesis.get(field, []) if field else []
        kind = rng.choice(list(kinds)) if kinds else fault
        nxt = starts[i + 1] if i + 1 < len(starts) else end
        dur = max(0.0, min(duration, nxt - at - 0.1, end - at))
        events.append(FaultEvent(round(at, 3), fault, kind, round(dur, 3), rng.randrange(2**31)))
    return events
