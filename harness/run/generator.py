"""Generators: the seeded, deterministic schedule of client ops and faults of one test.

The client op sequence comes from the workload's `OpStream` (seeded), handed out to worker
threads in order under a lock, with a global rate limit and a time limit; which worker gets
which op depends on timing, the sequence does not. The fault schedule is computed up front
from its own seeded random source: the same seed gives the same ops and the same faults.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workloads.base import OpStream

#: Sub-kinds each fault draws from (the config narrows them per fault).
KIND_FIELDS = {"partition": "partitions", "kill": "kills", "pause": "pauses", "clock": "clocks"}


class ClientGenerator:
    """Hands out the next client op until the phase ends, pacing to `rate` ops/s (0 = no limit)."""

    def __init__(self, stream: OpStream, rate: float, clock: Any = time.monotonic) -> None:
        self.stream = stream
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._deadline = float("inf")
        self._stopped = threading.Event()

    def run_until(self, deadline: float) -> None:
        """Open a phase: ops are handed out until `deadline` (on this generator's clock)."""
        with self._lock:
            self._deadline = deadline
            self._next_slot = self._clock()

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def next_op(self) -> dict[str, Any] | None:
        """The next op, after waiting for its rate-limit slot; None when the phase is over."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            if self._stopped.is_set() or slot >= self._deadline:
                return None
            self._next_slot = slot + self.interval
            op = self.stream.next()
        wait = slot - now
        if wait > 0 and self._stopped.wait(wait):
            return None
        return op


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
        kinds = nemesis.get(KIND_FIELDS[fault], []) if fault in KIND_FIELDS else []
        kind = rng.choice(list(kinds)) if kinds else fault
        nxt = starts[i + 1] if i + 1 < len(starts) else end
        dur = max(0.0, min(duration, nxt - at - 0.1, end - at))
        events.append(FaultEvent(round(at, 3), fault, kind, round(dur, 3), rng.randrange(2**31)))
    return events


def op_sequence(make_stream: Any, seed: int, opts: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """The first `n` ops a seed gives (used to show and test determinism)."""
    stream: OpStream = make_stream(seed, opts)
    return [stream.next() for _ in range(n)]
