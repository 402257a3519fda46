"""The node's time for Raft ticks and deadlines: a monotonic clock that never steps back.

Under a clock fault the node's time.monotonic() is libfaketime's (harness/providers/clock.py),
which fakes the monotonic and the wall clock from one spec: it runs at the fault's rate and
steps forward or back with the wall clock. A kernel's monotonic clock never steps back, and the
node keeps that guarantee: a step forward counts in full (a step of a minute expires the
requests waiting on it, and is one tick), a step back counts as no time at all, so it neither
stalls the ticks nor stretches a deadline by the size of the step.
"""

from __future__ import annotations

import threading
import time


class SteadyClock:
    def __init__(self) -> None:
        self._last = time.monotonic()
        self._now = self._last
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            t = time.monotonic()
            if t > self._last:
                self._now += t - self._last
            self._last = t
            return self._now
