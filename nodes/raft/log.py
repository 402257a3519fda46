"""The Raft log: stable entries in Storage plus the unstable tail not yet persisted."""

from __future__ import annotations

from .errors import Compacted, InvariantViolated, Unavailable
from .storage import Storage, limit_size
from .types import Entry, Snapshot


class Unstable:
    """Entries (and maybe a snapshot) handed to the application but not yet durable.

    entries[i] has index offset + i.
    """

    __slots__ = ("snapshot", "entries", "offset")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == i:
                return self.snapshot.metadata.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        gt = self.maybe_term(i)
        if gt is None:
            return
        # Only if the entry at i still has term t (it may have been replaced meanwhile).
        if gt == t and i >= self.offset:
            del self.entries[: i + 1 - self.offset]
            self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == i:
            self.snapshot = None

    def restore(self, s: Snapshot) -> None:
        self.offset = s.metadata.index + 1
        self.entries = []
        self.snapshot = s

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replace the whole unstable tail, starting from an earlier index.
            self.offset = after
            self.entries = list(ents)
        else:
            self.entries = self.entries[: after - self.offset] + list(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        upper = self.offset + len(self.entries)
        if lo > hi or lo < self.offset or hi > upper:
            raise InvariantViolated(
                f"unstable.slice[{lo},{hi}) out of bound [{self.offset},{upper}]"
            )
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    __slots__ = ("storage", "unstable", "committed", "applied", "max_next_ents_size")

    def __init__(self, storage: Storage, max_next_ents_size: int = 0) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the snapshot is committed and applied.
        self.committed = first - 1
        self.applied = first - 1
        self.max_next_ents_size = max_next_ents_size

    def __repr__(self) -> str:
        return (
            f"RaftLog(committed={self.committed}, applied={self.applied}, "
            f"unstable.offset={self.unstable.offset}, "
            f"len(unstable)={len(self.unstable.entries)})"
        )

    # -- appending --
    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> tuple[int, bool]:
        """Append ents after (index, log_term) if that entry matches; returns (last new, ok)."""
        if not self.match_term(index, log_term):
            return 0, False
        lastnewi = index + len(ents)
        ci = self.find_conflict(ents)
        if ci != 0:
            if ci <= self.committed:
                raise InvariantViolated(
                    f"entry {ci} conflicts with committed entry (committed {self.committed})"
                )
            self.append(list(ents[ci - index - 1 :]))
        self.commit_to(min(committed, lastnewi))
        return lastnewi, True

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise InvariantViolated(
                f"append after {after} is out of range (committed {self.committed})"
            )
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry that is new or conflicts, or 0 if all are present."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term: the fast-rejection hint."""
        while index > 0:
            try:
                our = self.term(index)
            except (Compacted, Unavailable):
                return index, 0
            if our <= term:
                return index, our
            index -= 1
        return 0, 0

    # -- reading --
    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def next_ents(self) -> list[Entry]:
        """Committed entries not yet applied (within max_next_ents_size)."""
        off = max(self.applied + 1, self.first_index())
        if self.committed + 1 > off:
            limit = self.max_next_ents_size or None
            return self.slice(off, self.committed + 1, limit)
        return []

    def has_next_ents(self) -> bool:
        return self.committed + 1 > max(self.applied + 1, self.first_index())

    def has_pending_snapshot(self) -> bool:
        s = self.unstable.snapshot
        return s is not None and not s.is_empty()

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def last_term(self) -> int:
        return self.term(self.last_index())

    def term(self, i: int) -> int:
        """Term of entry i; 0 outside [first-1, last]; raises Compacted/Unavailable."""
        dummy = self.first_index() - 1
        if i < dummy or i > self.last_index():
            return 0
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        return self.storage.term(i)

    def zero_term_on_compacted(self, i: int) -> int:
        try:
            return self.term(i)
        except Compacted:
            return 0

    def match_term(self, i: int, term: int) -> bool:
        try:
            return self.term(i) == term
        except (Compacted, Unavailable):
            return False

    def entries(self, i: int, max_size: int | None = None) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_size)

    def all_entries(self) -> list[Entry]:
        try:
            return self.entries(self.first_index())
        except Compacted:  # racing compaction: retry once from the new first index
            return self.entries(self.first_index())

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Is a log ending at (lasti, term) at least as up-to-date as ours (§5.4.1)?"""
        lt = self.last_term()
        return term > lt or (term == lt and lasti >= self.last_index())

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi), at most max_size bytes (but at least one)."""
        self._check_bounds(lo, hi)
        if lo == hi:
            return []
        ents: list[Entry] = []
        uoff = self.unstable.offset
        if lo < uoff:
            stored = self.storage.entries(lo, min(hi, uoff), max_size)
            if len(stored) < min(hi, uoff) - lo:
                return stored  # size-limited inside storage
            ents = stored
        if hi > uoff:
            tail = self.unstable.slice(max(lo, uoff), hi)
            ents = ents + tail if ents else tail
        return limit_size(ents, max_size)

    def _check_bounds(self, lo: int, hi: int) -> None:
        if lo > hi:
            raise InvariantViolated(f"invalid slice {lo} > {hi}")
        fi = self.first_index()
        if lo < fi:
            raise Compacted(f"slice from {lo} is compacted (first {fi})")
        if hi > self.last_index() + 1:
            raise InvariantViolated(
                f"slice[{lo},{hi}) out of bound [{fi},{self.last_index()}]"
            )

    # -- progress of commit / apply / persistence --
    def commit_to(self, tocommit: int) -> None:
        if self.committed < tocommit:  # never decrease commit
            if self.last_index() < tocommit:
                raise InvariantViolated(
                    f"commit {tocommit} is out of range (last {self.last_index()})"
                )
            self.committed = tocommit

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if self.committed < i or i < self.applied:
            raise InvariantViolated(
                f"applied {i} out of range [prev applied {self.applied}, "
                f"committed {self.committed}]"
            )
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def restore(self, s: Snapshot) -> None:
        self.committed = s.metadata.index
        self.unstable.restore(s)
