"""MemoryStorage, the Raft log with its unstable tail, Inflights and Progress."""

from __future__ import annotations

import pytest

from nodes.raft import (
    Compacted,
    ConfState,
    Entry,
    InvariantViolated,
    MemoryStorage,
    SnapOutOfDate,
    Snapshot,
    SnapshotMetadata,
    Unavailable,
)
from nodes.raft.inflights import Inflights
from nodes.raft.log import RaftLog
from nodes.raft.progress import Progress
from nodes.raft.types import ProgressState
from tests.support.raft_network import log_of


def storage_with(*terms: int) -> MemoryStorage:
    st = MemoryStorage()
    st.append(log_of(*terms))
    return st


# ---------------------------------------------------------------- MemoryStorage
def test_memory_storage_term_entries_and_bounds() -> None:
    st = storage_with(1, 1, 2, 3)
    assert (st.first_index(), st.last_index()) == (1, 4)
    assert [st.term(i) for i in range(0, 5)] == [0, 1, 1, 2, 3]
    assert st.entries(2, 4) == log_of(1, 1, 2)[1:3]
    with pytest.raises(Unavailable):
        st.term(5)
    assert len(st.entries(1, 5, max_size=0)) == 1  # always at least one entry


def test_memory_storage_compact_snapshot_and_truncate() -> None:
    st = storage_with(1, 1, 2, 3, 3)
    snap = st.create_snapshot(3, ConfState((1, 2, 3)), b"s")
    assert (snap.metadata.index, snap.metadata.term) == (3, 2)
    st.compact(3)
    assert st.first_index() == 4 and st.term(3) == 2
    with pytest.raises(Compacted):
        st.entries(3, 5)
    with pytest.raises(Compacted):
        st.term(2)
    with pytest.raises(SnapOutOfDate):
        st.create_snapshot(2, None, b"")
    # Appending a conflicting suffix truncates.
    st.append([Entry(4, 5), Entry(4, 6)])
    assert [st.term(i) for i in (4, 5, 6)] == [3, 4, 4]
    with pytest.raises(InvariantViolated, match="missing"):
        st.append([Entry(4, 9)])


def test_memory_storage_apply_snapshot() -> None:
    st = storage_with(1, 1)
    s = Snapshot(b"x", SnapshotMetadata(ConfState((1,)), 10, 3))
    st.apply_snapshot(s)
    assert (st.first_index(), st.last_index(), st.term(10)) == (11, 10, 3)
    with pytest.raises(SnapOutOfDate):
        st.apply_snapshot(s)


# ---------------------------------------------------------------- RaftLog
def test_raft_log_append_conflict_and_commit() -> None:
    rl = RaftLog(storage_with(1, 1, 2))
    assert rl.last_index() == 3 and rl.committed == 0
    last, ok = rl.maybe_append(3, 2, 4, (Entry(3, 4), Entry(3, 5)))
    assert ok and last == 5 and rl.committed == 4
    assert [e.index for e in rl.unstable_entries()] == [4, 5]
    last, ok = rl.maybe_append(3, 9, 5, (Entry(3, 4),))
    assert not ok
    # Conflict at 5 replaces the unstable suffix.
    last, ok = rl.maybe_append(4, 3, 4, (Entry(4, 5),))
    assert ok and rl.term(5) == 4
    with pytest.raises(InvariantViolated, match="committed"):
        rl.maybe_append(3, 2, 4, (Entry(9, 4),))


def test_raft_log_stable_and_next_ents() -> None:
    st = storage_with(1)
    rl = RaftLog(st)
    rl.append([Entry(2, 2), Entry(2, 3)])
    rl.commit_to(3)
    assert [e.index for e in rl.next_ents()] == [1, 2, 3]
    rl.applied_to(2)
    assert [e.index for e in rl.next_ents()] == [3]
    st.append(rl.unstable_entries())
    rl.stable_to(3, 2)
    assert rl.unstable_entries() == [] and rl.last_index() == 3
    rl.stable_to(3, 9)  # stale (wrong term): ignored


def test_find_conflict_by_term() -> None:
    rl = RaftLog(storage_with(1, 3, 3, 3, 5))
    assert rl.find_conflict_by_term(5, 4) == (4, 3)
    assert rl.find_conflict_by_term(4, 2) == (1, 1)
    assert rl.find_conflict_by_term(5, 5) == (5, 5)
    assert rl.find_conflict_by_term(3, 0) == (0, 0)


def test_is_up_to_date() -> None:
    rl = RaftLog(storage_with(1, 2, 2))
    assert rl.is_up_to_date(3, 2) and rl.is_up_to_date(1, 3)
    assert not rl.is_up_to_date(2, 2) and not rl.is_up_to_date(9, 1)


# ---------------------------------------------------------------- Inflights
def test_inflights_grow_on_demand_up_to_size() -> None:
    inf = Inflights(10)
    assert inf.capacity() == 0  # nothing allocated for an idle follower
    caps = []
    for i in range(10):
        inf.add(i)
        caps.append(inf.capacity())
    assert caps == [1, 2, 4, 4, 8, 8, 8, 8, 10, 10]
    assert inf.full()
    with pytest.raises(InvariantViolated):
        inf.add(99)


def test_inflights_free_and_wrap_around() -> None:
    inf = Inflights(4)
    for i in (1, 2, 3, 4):
        inf.add(i)
    inf.free_le(2)
    assert inf.count == 2
    inf.add(5)
    inf.add(6)  # wraps around the ring
    assert inf.full()
    inf.free_le(5)
    assert inf.count == 1
    inf.free_first_one()
    assert inf.count == 0
    inf.free_le(100)  # no-op when empty
    assert inf.count == 0


def test_inflights_reset_releases_buffer() -> None:
    inf = Inflights(256)
    for i in range(100):
        inf.add(i)
    inf.reset()
    assert (inf.count, inf.capacity()) == (0, 0)
    inf.add(7)
    assert inf.capacity() == 1


# ---------------------------------------------------------------- Progress
def test_progress_probe_replicate_snapshot_transitions() -> None:
    pr = Progress(5, 4)
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.probe_sent = True
    assert pr.is_paused()
    assert pr.maybe_update(6) and not pr.probe_sent
    pr.become_replicate()
    assert pr.next == 7
    pr.optimistic_update(9)
    assert pr.next == 10
    assert not pr.maybe_decr_to(5, 5)  # stale rejection (below match)
    assert pr.maybe_decr_to(9, 7) and pr.next == 7
    pr.become_snapshot(20)
    assert pr.is_paused()
    pr.become_probe()
    assert pr.next == 21


def test_probe_decrement_uses_hint() -> None:
    pr = Progress(10, 4)
    assert not pr.maybe_decr_to(5, 3)  # not the outstanding probe
    assert pr.maybe_decr_to(9, 3) and pr.next == 4
    assert pr.maybe_decr_to(3, 0) and pr.next == 1
