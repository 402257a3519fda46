"""A leader sends its appends before its own fsync; every promise waits for the fsync.

The node is driven in-process (its loop thread is not started): wal.sync and transport.send
are wrapped to record the order in which the node fsyncs and hands messages to the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nodes.early_send import split_messages
from nodes.node import Node
from nodes.options import build_parser, config_from_args
from nodes.raft import (
    Entry,
    HardState,
    Message,
    MessageType,
    Ready,
    StateType,
    codec,
)
from nodes.raft.types import EMPTY_HARD_STATE, Snapshot, SnapshotMetadata
from tests.support.raftkv_cluster import free_ports

MT = MessageType


@dataclass
class Recorder:
    """The node's fsyncs and sends, in order: ("sync", None) or ("send", message type)."""

    events: list[tuple[str, MessageType | None]] = field(default_factory=list)

    def sends_before_first_sync(self) -> list[MessageType | None]:
        out = []
        for kind, mt in self.events:
            if kind == "sync":
                break
            out.append(mt)
        return out

    def sends_after_last_sync(self) -> list[MessageType | None]:
        out: list[MessageType | None] = []
        for kind, mt in self.events:
            out = [] if kind == "sync" else [*out, mt]
        return out


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Node, Recorder]]:
    ports = free_ports(5)  # three peers; client and admin are never opened
    peers = ",".join(f"n{i + 1}=127.0.0.1:{p}" for i, p in enumerate(ports[:3]))
    data = tmp_path / "n1"
    data.mkdir()
    ns = build_parser().parse_args([
        "--id", "n1", "--data-dir", str(data), "--listen", f"127.0.0.1:{ports[0]}",
        "--client", f"127.0.0.1:{ports[3]}", "--admin", f"127.0.0.1:{ports[4]}", "--peers", peers,
    ])
    n = Node(config_from_args(ns))
    rec = Recorder()
    real_sync = n.wal.sync

    def sync() -> None:
        real_sync()
        rec.events.append(("sync", None))

    def send(to: int, payload: bytes, snapshot: bool = False) -> None:
        rec.events.append(("send", codec.decode_message(payload).type))

    def send_batch(to: int, payloads: list[bytes]) -> None:
        for p in payloads:
            send(to, p)

    n.wal.sync = sync  # type: ignore[method-assign]
    n.transport.send = send  # type: ignore[method-assign]
    n.transport.send_batch = send_batch  # type: ignore[method-assign]
    try:
        yield n, rec
    finally:
        n.transport.stop()
        n.wal.close()


def drain(n: Node) -> None:
    for _ in range(20):  # bounded: a handful of Readies at most
        if not n.rn.has_ready():
            return
        n._handle_ready(n.rn.ready())
    raise AssertionError("node kept producing Readies")


def elect(n: Node, rec: Recorder) -> int:
    drain(n)  # the bootstrap entries
    n.rn.campaign()
    drain(n)
    if n.cfg.pre_vote:  # a pre-vote promises nothing and persists nothing
        n.rn.step(Message(MT.PRE_VOTE_RESP, to=1, from_=2, term=n.rn.raft.term + 1))
    rec.events.clear()
    drain(n)
    term = n.rn.raft.term
    # the candidate's own vote is durable before it asks for votes
    assert rec.events[0] == ("sync", None) and rec.sends_before_first_sync() == []
    assert set(mt for kind, mt in rec.events if kind == "send") == {MT.VOTE}
    n.rn.step(Message(MT.VOTE_RESP, to=1, from_=2, term=term))
    return term


def test_leader_appends_are_sent_before_its_fsync(node: tuple[Node, Recorder]) -> None:
    n, rec = node
    elect(n, rec)
    rec.events.clear()
    drain(n)  # becomes leader: appends its empty entry and sends it
    assert n.role == StateType.LEADER
    assert rec.sends_before_first_sync() == [MT.APP, MT.APP]
    assert ("sync", None) in rec.events
    term, last = n.rn.raft.term, n.storage.last_index()
    for peer in (2, 3):  # both followers acknowledge: their progress leaves probing
        n.rn.step(Message(MT.APP_RESP, to=1, from_=peer, term=term, index=last))
    drain(n)
    rec.events.clear()
    n.rn.propose(b"x")
    drain(n)
    assert rec.sends_before_first_sync() == [MT.APP, MT.APP]
    assert rec.events[-1] == ("sync", None)  # the write itself is still fsynced


def test_committed_entries_apply_during_the_fsync_only_once_durable(
    node: tuple[Node, Recorder],
) -> None:
    """Entries made durable by an earlier Ready are applied (and answered) before this
    Ready's fsync; entries of this Ready never are, and nothing is applied unsynced."""
    n, rec = node
    elect(n, rec)
    drain(n)
    term = n.rn.raft.term
    for peer in (2, 3):
        n.rn.step(Message(MT.APP_RESP, to=1, from_=peer, term=term, index=n.storage.last_index()))
    drain(n)
    written = synced = 0
    applied: list[tuple[int, int]] = []  # (index, durable index when it was applied)
    real_save, real_sync, real_apply = n.wal.save, n.wal.sync, n._apply

    def save(hs: HardState | None, entries: list[Entry]) -> None:
        nonlocal written
        real_save(hs, entries)
        if entries:
            written = entries[-1].index

    def sync() -> None:
        nonlocal synced
        real_sync()
        synced = written

    def apply(ents: list[Entry]) -> None:
        applied.extend((e.index, synced) for e in ents)
        rec.events.append(("apply", None))
        real_apply(ents)

    n.wal.save = save  # type: ignore[method-assign,assignment]
    n.wal.sync = sync  # type: ignore[method-assign]
    n._apply = apply  # type: ignore[method-assign]
    n.rn.propose(b"a")
    drain(n)
    a = n.storage.last_index()
    rec.events.clear()
    n.rn.propose(b"b")  # b is appended in the same Ready that commits a
    n.rn.step(Message(MT.APP_RESP, to=1, from_=2, term=term, index=a))
    drain(n)
    assert [i for i, _ in applied] == [a]
    assert rec.events.index(("apply", None)) < rec.events.index(("sync", None))
    n.rn.step(Message(MT.APP_RESP, to=1, from_=2, term=term, index=a + 1))
    drain(n)
    assert [i for i, _ in applied] == [a, a + 1]
    assert all(i <= durable for i, durable in applied)


def test_leader_heartbeat_goes_early(node: tuple[Node, Recorder]) -> None:
    n, rec = node
    elect(n, rec)
    drain(n)
    rec.events.clear()
    for _ in range(n.cfg.heartbeat_tick):
        n.rn.tick()
    drain(n)
    assert set(mt for kind, mt in rec.events if kind == "send") == {MT.HEARTBEAT}
    assert ("sync", None) not in rec.events  # nothing to persist: nothing waits


def test_vote_response_waits_for_durable_vote(node: tuple[Node, Recorder]) -> None:
    n, rec = node
    drain(n)
    term = n.rn.raft.term
    rec.events.clear()
    n.rn.step(Message(MT.VOTE, to=1, from_=2, term=term + 1, log_term=1, index=10))
    drain(n)
    assert rec.events[0] == ("sync", None)
    assert rec.sends_after_last_sync() == [MT.VOTE_RESP]
    assert n.rn.prev_hard_state.vote == 2


def test_deposed_leader_append_response_waits(node: tuple[Node, Recorder]) -> None:
    """A leader that steps down to a new leader in the same Ready acks only after the fsync."""
    n, rec = node
    term = elect(n, rec)
    drain(n)
    rec.events.clear()
    last = n.storage.last_index()
    ent = Entry(term + 1, last + 1, data=b"y")
    n.rn.step(Message(MT.APP, to=1, from_=3, term=term + 1, log_term=term, index=last,
                      entries=(ent,), commit=0))
    drain(n)
    assert n.role == StateType.FOLLOWER
    assert rec.events[0] == ("sync", None)
    assert MT.APP_RESP in rec.sends_after_last_sync()


def _msgs(*types: MessageType) -> list[Message]:
    return [Message(t, to=2, from_=1, term=3) for t in types]


ALL = (MT.APP, MT.HEARTBEAT, MT.VOTE_RESP, MT.PRE_VOTE_RESP, MT.APP_RESP,
       MT.HEARTBEAT_RESP, MT.TIMEOUT_NOW, MT.READ_INDEX_RESP, MT.SNAP, MT.VOTE,
       MT.PROP, MT.READ_INDEX)
FWD = [MT.PROP, MT.READ_INDEX]  # forwarded to the leader: no promise, never held back
SNAP = Snapshot(b"", SnapshotMetadata(index=5, term=2))


@pytest.mark.parametrize(
    ("role", "hs", "snap", "early"),
    [
        (StateType.LEADER, EMPTY_HARD_STATE, None, [MT.APP, MT.HEARTBEAT, *FWD]),
        (StateType.LEADER, HardState(3, 1, 9), None, [MT.APP, MT.HEARTBEAT, *FWD]),  # commit only
        (StateType.LEADER, HardState(4, 1, 9), None, FWD),  # new term not yet durable
        (StateType.LEADER, HardState(3, 2, 9), None, FWD),  # new vote not yet durable
        (StateType.LEADER, EMPTY_HARD_STATE, SNAP, []),
        (StateType.FOLLOWER, EMPTY_HARD_STATE, None, FWD),
        (StateType.FOLLOWER, HardState(4, 2, 9), None, FWD),  # its own new vote: still late
        (StateType.FOLLOWER, EMPTY_HARD_STATE, SNAP, []),
        (StateType.CANDIDATE, EMPTY_HARD_STATE, None, FWD),
        (StateType.PRE_CANDIDATE, EMPTY_HARD_STATE, None, FWD),
    ],
)
def test_split_messages(
    role: StateType, hs: HardState, snap: Snapshot | None, early: list[MessageType]
) -> None:
    rd = Ready(hard_state=hs, messages=_msgs(*ALL))
    if snap is not None:
        rd.snapshot = snap
    got_early, got_late = split_messages(rd, role, HardState(3, 1, 7))
    assert [m.type for m in got_early] == early
    assert sorted(m.type for m in got_early + got_late) == sorted(ALL)
