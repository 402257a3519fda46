"""The node event log (docs/architecture.md "Node events"): facts for the Raft safety checker.

Lines are buffered in memory and written with one os.write per flush, so logging every apply
costs little; the buffer is flushed at every role change, every vote, on shutdown, and by the
node loop at least every FLUSH_INTERVAL seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

FLUSH_INTERVAL = 0.2
MAX_BUFFERED = 512


def node_name(raft_id: int) -> str:
    return f"n{raft_id}"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class EventLog:
    """Owned by the node loop thread; not shared with other threads."""

    def __init__(self, path: Path, node: str, boot: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.node = node
        self.boot = boot
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._buf: list[str] = []
        self._last_flush = time.monotonic()

    def emit(self, etype: str, flush: bool = False, **fields: Any) -> None:
        body = {"ts": time.time(), "node": self.node, "boot": self.boot, "type": etype}
        body.update(fields)
        self._buf.append(json.dumps(body, separators=(",", ":")))
        if flush or len(self._buf) >= MAX_BUFFERED:
            self.flush()

    def maybe_flush(self) -> None:
        since = time.monotonic() - self._last_flush
        # negative: the node's (faked) clock stepped back; flush rather than wait out the step
        if self._buf and (since >= FLUSH_INTERVAL or since < 0):
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buf:
            return
        data = ("\n".join(self._buf) + "\n").encode()
        self._buf.clear()
        n = os.write(self._fd, data)
        while n < len(data):
            n += os.write(self._fd, data[n:])

    def close(self) -> None:
        self.flush()
        os.close(self._fd)
