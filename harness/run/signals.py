"""Ctrl-C and SIGTERM as a graceful stop request, for `faultline run` and the campaigns."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any


class StopOnSignal:
    """First SIGINT/SIGTERM sets `stop` (the caller finishes gracefully: heals, tears down,
    checks) and says `doing` on stderr; a second one raises KeyboardInterrupt."""

    def __init__(self, stop: threading.Event | None = None, doing: str = "stopping, healing and checking...") -> None:
        self.stop = stop if stop is not None else threading.Event()
        self.doing = doing
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        sys.stderr.write(f"\nfaultline: {signal.Signals(signum).name}: {self.doing}\n")
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
