"""The Storage protocol the Raft log reads from, and an in-memory implementation.

The application writes to storage (entries, hard state, snapshots) while handling a Ready;
the Raft core only reads. `MemoryStorage.ents[0]` is a dummy entry carrying the index and
term of the last compaction/snapshot point, as in etcd.
"""

from __future__ import annotations

from typing import Protocol

from .errors import Compacted, InvariantViolated, SnapOutOfDate, Unavailable
from .types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

ENTRY_OVERHEAD = 12  # rough per-entry bytes beyond its data, for size limits


def entry_size(e: Entry) -> int:
    return len(e.data) + ENTRY_OVERHEAD


def limit_size(ents: list[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix within max_size bytes, but always at least one entry."""
    if max_size is None or not ents:
        return ents
    size = entry_size(ents[0])
    for k in range(1, len(ents)):
        size += entry_size(ents[k])
        if size > max_size:
            return ents[:k]
    return ents


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]: ...

    def term(self, i: int) -> int: ...

    def last_index(self) -> int: ...

    def first_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


class MemoryStorage:
    """Storage kept in memory (tests, benchmarks, and the node's in-memory log cache)."""

    __slots__ = ("hard_state", "snap", "ents")

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snap = Snapshot()
        self.ents: list[Entry] = [Entry(0, 0)]

    # -- Storage protocol --
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self.snap.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        offset = self.ents[0].index
        if lo <= offset:
            raise Compacted(f"storage.entries: index {lo} is compacted (first {offset + 1})")
        if hi > self.last_index() + 1:
            raise InvariantViolated(
                f"storage.entries: hi {hi} is out of bound (last {self.last_index()})"
            )
        if len(self.ents) == 1:
            raise Unavailable("storage.entries: only the dummy entry is present")
        return limit_size(self.ents[lo - offset : hi - offset], max_size)

    def term(self, i: int) -> int:
        offset = self.ents[0].index
        if i < offset:
            raise Compacted(f"storage.term: index {i} is compacted (offset {offset})")
        if i - offset >= len(self.ents):
            raise Unavailable(f"storage.term: index {i} is past the last index")
        return self.ents[i - offset].term

    def last_index(self) -> int:
        return self.ents[0].index + len(self.ents) - 1

    def first_index(self) -> int:
        return self.ents[0].index + 1

    def snapshot(self) -> Snapshot:
        return self.snap

    # -- writes by the application --
    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the storage contents with a snapshot received from the leader."""
        if snap.metadata.index <= self.snap.metadata.index:
            raise SnapOutOfDate(
                f"storage.apply_snapshot: index {snap.metadata.index} <= "
                f"{self.snap.metadata.index}"
            )
        self.snap = snap
        self.ents = [Entry(snap.metadata.term, snap.metadata.index)]

    def create_snapshot(
        self, i: int, conf_state: ConfState | None, data: bytes
    ) -> Snapshot:
        """Record a snapshot of the applied state at index i (compaction is separate)."""
        if i <= self.snap.metadata.index:
            raise SnapOutOfDate(
                f"storage.create_snapshot: index {i} <= {self.snap.metadata.index}"
            )
        if i > self.last_index():
            raise InvariantViolated(
                f"storage.create_snapshot: index {i} > last index {self.last_index()}"
            )
        offset = self.ents[0].index
        cs = conf_state if conf_state is not None else self.snap.metadata.conf_state
        self.snap = Snapshot(data, SnapshotMetadata(cs, i, self.ents[i - offset].term))
        return self.snap

    def compact(self, compact_index: int) -> None:
        """Discard entries before compact_index (it becomes the dummy entry)."""
        offset = self.ents[0].index
        if compact_index <= offset:
            raise Compacted(f"storage.compact: index {compact_index} already compacted")
        if compact_index > self.last_index():
            raise InvariantViolated(
                f"storage.compact: index {compact_index} > last index {self.last_index()}"
            )
        i = compact_index - offset
        head = self.ents[i]
        self.ents = [Entry(head.term, head.index)] + self.ents[i + 1 :]

    def append(self, entries: list[Entry]) -> None:
        """Append (and truncate conflicting suffix for) entries from a Ready."""
        if not entries:
            return
        first = self.first_index()
        last = entries[0].index + len(entries) - 1
        if last < first:
            return  # all already compacted
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self.ents[0].index
        if len(self.ents) > offset:
            self.ents = self.ents[:offset] + list(entries)
        elif len(self.ents) == offset:
            self.ents.extend(entries)
        else:
            raise InvariantViolated(
                f"storage.append: missing log entries (last {self.last_index()}, "
                f"appending at {entries[0].index})"
            )
