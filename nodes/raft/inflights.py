"""A bounded window of in-flight append messages to one follower.

The ring buffer is allocated lazily and grows by doubling up to `size`, so thousands of idle
groups do not each hold a max-sized buffer (etcd's fix for many-groups processes).
"""

from __future__ import annotations

from .errors import InvariantViolated


class Inflights:
    __slots__ = ("size", "start", "count", "buffer")

    def __init__(self, size: int) -> None:
        self.size = size  # the maximum number of in-flight messages
        self.start = 0
        self.count = 0
        self.buffer: list[int] | None = None  # allocated on first add

    def capacity(self) -> int:
        return 0 if self.buffer is None else len(self.buffer)

    def full(self) -> bool:
        return self.count == self.size

    def add(self, index: int) -> None:
        """Record a message whose last entry is `index` (indexes must increase)."""
        if self.full():
            raise InvariantViolated("inflights.add: window is full")
        cap = self.capacity()
        if self.count == cap:
            self._grow()
            cap = self.capacity()
        assert self.buffer is not None
        nxt = self.start + self.count
        if nxt >= cap:
            nxt -= cap
        self.buffer[nxt] = index
        self.count += 1

    def _grow(self) -> None:
        old = self.buffer or []
        new_cap = min(max(1, 2 * len(old)), self.size)
        ordered = [old[(self.start + k) % len(old)] for k in range(self.count)] if old else []
        self.buffer = ordered + [0] * (new_cap - len(ordered))
        self.start = 0

    def free_le(self, to: int) -> None:
        """Free every in-flight message whose index is <= to."""
        if self.count == 0 or self.buffer is None or to < self.buffer[self.start]:
            return
        cap = len(self.buffer)
        idx = self.start
        freed = 0
        while freed < self.count:
            if to < self.buffer[idx]:
                break
            idx += 1
            if idx >= cap:
                idx -= cap
            freed += 1
        self.count -= freed
        self.start = idx
        if self.count == 0:
            self.start = 0  # keep the ring compact when empty

    def free_first_one(self) -> None:
        if self.count and self.buffer is not None:
            self.free_le(self.buffer[self.start])

    def reset(self) -> None:
        """Forget everything and release the buffer."""
        self.count = 0
        self.start = 0
        self.buffer = None
