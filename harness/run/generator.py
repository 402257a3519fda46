"""The client generator: the seeded, deterministic stream of client ops of one test.

The client op sequence comes from the workload's op stream (seeded; `workloads.base.Stream`), handed out to worker
threads in order under a lock, with a global rate limit and a time limit; which worker gets
which op depends on timing, the sequence does not. The fault schedule is the nemesis's
(harness.nemesis.schedule), computed up front from its own seeded random source: the same seed
gives the same ops and the same faults.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from workloads.base import Stream


class ClientGenerator:
    """Hands out the next client op until the phase ends, pacing to `rate` ops/s (0 = no limit)."""

    def __init__(self, stream: Stream, rate: float, clock: Any = time.monotonic) -> None:
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


def op_sequence(make_stream: Any, seed: int, opts: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """The first `n` ops a seed gives (used to show and test determinism)."""
    stream: Stream = make_stream(seed, opts)
    return [stream.next() for _ in range(n)]
