"""The live history: `history.jsonl`, one operation per line, appended and flushed per line.

Lines are written with `os.write` on an O_APPEND descriptor, so each completed line is in the
kernel as soon as `append` returns and survives a SIGKILL of the controller; a reader
(`checkers.rundata.read_records`) skips a torn last line.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

# One encoder for all lines: json.dumps with options builds a new encoder per call.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


class HistoryClosed(ValueError):
    """An append after close (a worker that outlived its phase)."""


class HistoryWriter:
    """Assigns `index` and `time` (ns since the test started) and appends one line per op."""

    def __init__(self, path: Path, start_ns: int | None = None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()
        self._index = 0
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns
        self.counts: dict[str, int] = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}

    def now(self) -> int:
        return time.monotonic_ns() - self.start_ns

    def append(self, op: dict[str, Any]) -> dict[str, Any]:
        """Stamp `op` with index and time (unless given) and write it; returns the stamped op."""
        with self._lock:
            if self._fd < 0:
                raise HistoryClosed(f"{self.path}: history is closed")
            op["index"] = self._index
            op.setdefault("time", self.now())
            self._index += 1
            os.write(self._fd, (_encode(op) + "\n").encode())
            t = op.get("type")
            if op.get("process") != "nemesis" and t in self.counts:
                self.counts[t] += 1
        return op

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

