"""Log lines that a peer or the operating system can provoke in a loop, at a bounded rate.

A stranger reconnecting as fast as it can, or accept() failing with EMFILE on every wake-up,
must not turn the node's log into the bottleneck (issue 20: 440,000 lines in 6 s).
"""

from __future__ import annotations

import logging
import time


class Throttled:
    """At most one line per `interval` seconds for each key; the next line that is let
    through says how many were held back meanwhile. Not thread-safe: one per thread."""

    def __init__(self, log: logging.Logger, interval: float = 5.0) -> None:
        self.log = log
        self.interval = interval
        self._seen: dict[str, tuple[float, int]] = {}  # key -> (last logged, held back since)

    def warning(self, key: str, msg: str, *args: object) -> bool:
        """Log msg % args unless `key` was logged less than `interval` ago; True if logged."""
        now = time.monotonic()
        last, held = self._seen.get(key, (float("-inf"), 0))
        if now - last < self.interval:
            self._seen[key] = (last, held + 1)
            return False
        if held:
            msg += f" ({held} more like it in the last {now - last:.0f} s)"
        self.log.warning(msg, *args)
        self._seen[key] = (now, 0)
        return True
