"""What the volatile layer remembers to undo: per file, the durable bytes that unsynced writes
covered; per directory, the durable entries that unsynced creates, renames and unlinks changed.

The backing directory always holds the latest (volatile) state, so reads and appends pass
straight through. A power loss rebuilds the durable state from the backing files and these
journals (faultfs.crash). Pure data structures, no I/O: the caller passes the reads in.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: Reads `length` bytes at `offset` of the backing file (the current, volatile bytes).
ReadAt = Callable[[int, int], bytes]


@dataclass
class FileJournal:
    """One regular file's content since its last fsync.

    Invariant: every byte position p < durable_size either lies in a saved range (holding the
    durable byte) or still holds its durable byte in the backing file. Positions at or past
    durable_size never need saving: the crash truncates them away.
    """

    durable_size: int
    starts: list[int] = field(default_factory=list)  # sorted, ranges do not overlap
    chunks: list[bytes] = field(default_factory=list)
    unsynced_bytes: int = 0  # bytes written or cut since the last fsync (for status)

    @property
    def saved_bytes(self) -> int:
        return sum(len(c) for c in self.chunks)

    def saved(self) -> Iterator[tuple[int, bytes]]:
        return zip(self.starts, self.chunks, strict=True)

    def _gaps(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The parts of [lo, hi) that no saved range covers."""
        gaps = []
        i = bisect.bisect_right(self.starts, lo) - 1
        if i < 0:
            i = 0
        pos = lo
        while pos < hi and i < len(self.starts):
            s, e = self.starts[i], self.starts[i] + len(self.chunks[i])
            if e <= pos:
                i += 1
                continue
            if s >= hi:
                break
            if s > pos:
                gaps.append((pos, s))
            pos = max(pos, e)
            i += 1
        if pos < hi:
            gaps.append((pos, hi))
        return gaps

    def _insert(self, start: int, data: bytes) -> None:
        i = bisect.bisect_left(self.starts, start)
        self.starts.insert(i, start)
        self.chunks.insert(i, data)

    def preserve(self, lo: int, hi: int, cur_size: int, read_at: ReadAt) -> None:
        """Save the durable bytes of [lo, hi) before they are overwritten or cut.

        Only positions below both durable_size and cur_size can still hold durable bytes
        in the backing file; the ones between cur_size and durable_size were saved when the
        file was cut below them.
        """
        hi = min(hi, self.durable_size, cur_size)
        if lo >= hi:
            return
        for a, b in self._gaps(lo, hi):
            data = read_at(a, b - a)
            if len(data) != b - a:
                raise OSError(f"short read of backing file at {a}: {len(data)} of {b - a} bytes")
            self._insert(a, data)

    def note_write(self, offset: int, length: int, cur_size: int, read_at: ReadAt) -> None:
        self.preserve(offset, offset + length, cur_size, read_at)
        self.unsynced_bytes += length

    def note_truncate(self, new_size: int, cur_size: int, read_at: ReadAt) -> None:
        if new_size < cur_size:
            self.preserve(new_size, cur_size, cur_size, read_at)
        self.unsynced_bytes += abs(cur_size - new_size)


@dataclass(frozen=True)
class Entry:
    """A directory entry as the durable state knows it: the backing inode it names."""

    ino: int
    is_dir: bool


@dataclass
class DirJournal:
    """A directory's durable entries, taken at its first change since its last fsync."""

    entries: dict[str, Entry]
    changes: int = 0  # namespace operations in it since the last fsync (for status)
