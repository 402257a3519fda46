"""RawNode: the application's handle on one Raft group (etcd's rawnode.go).

The application drives it: tick() on a timer, step() for every received message, and a
ready()/advance() loop that persists, sends and applies (see docs/raft-core-api.md).
"""

from __future__ import annotations

from .codec import encode_conf_change
from .config import Config
from .errors import RaftError, StepLocalMsg, StepPeerNotFound
from .raft import Raft
from .status import Status, basic_status, status
from .types import (
    EMPTY_SNAPSHOT,
    LOCAL_MESSAGES,
    NONE,
    RESPONSE_MESSAGES,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    SoftState,
)

MT = MessageType


class RawNode:
    __slots__ = ("raft", "prev_soft_state", "prev_hard_state")

    def __init__(self, config: Config) -> None:
        self.raft = Raft(config)
        self.prev_soft_state: SoftState = self.raft.soft_state()
        self.prev_hard_state: HardState = self.raft.hard_state()

    def bootstrap(self, voters: list[int]) -> None:
        """Initialise a brand-new member: conf-change entries for `voters` at term 1."""
        r = self.raft
        if not voters:
            raise RaftError("bootstrap: needs at least one voter")
        if r.raft_log.storage.last_index() != 0 or r.raft_log.last_index() != 0:
            raise RaftError(f"bootstrap: node {r.id} storage is not empty")
        r.become_follower(1, NONE)
        ents = [
            Entry(1, i + 1, EntryType.CONF_CHANGE,
                  encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, v)))
            for i, v in enumerate(voters)
        ]
        r.raft_log.append(ents)
        # Committed at once: every bootstrapping member writes the same entries. The
        # application will see them as committed entries and re-apply them (idempotent).
        r.raft_log.committed = len(ents)
        for v in voters:
            r.apply_conf_change(ConfChange(ConfChangeType.ADD_NODE, v))

    # -- inputs --
    def tick(self) -> None:
        self.raft.tick()

    def tick_quiesced(self) -> None:
        self.raft.tick_quiesced()

    def campaign(self) -> None:
        self.raft.step(Message(MT.HUP))

    def propose(self, data: bytes) -> None:
        r = self.raft
        r.step(Message(MT.PROP, from_=r.id, entries=(Entry(0, 0, EntryType.NORMAL, data),)))

    def propose_batch(self, datas: list[bytes]) -> None:
        """Several normal entries in one proposal: one append broadcast instead of one each."""
        r = self.raft
        ents = tuple(Entry(0, 0, EntryType.NORMAL, d) for d in datas)
        r.step(Message(MT.PROP, from_=r.id, entries=ents))

    def propose_conf_change(self, cc: ConfChange) -> None:
        r = self.raft
        e = Entry(0, 0, EntryType.CONF_CHANGE, encode_conf_change(cc))
        r.step(Message(MT.PROP, from_=r.id, entries=(e,)))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return self.raft.apply_conf_change(cc)

    def step(self, m: Message) -> None:
        if m.type in LOCAL_MESSAGES:
            raise StepLocalMsg(f"node {self.raft.id}: cannot step local message {m.type.name}")
        if m.type in RESPONSE_MESSAGES and m.from_ not in self.raft.tracker.progress:
            raise StepPeerNotFound(
                f"node {self.raft.id}: {m.type.name} from unknown peer {m.from_}"
            )
        self.raft.step(m)

    def read_index(self, ctx: bytes) -> None:
        self.raft.step(Message(MT.READ_INDEX, context=ctx))

    def transfer_leader(self, to: int) -> None:
        self.raft.step(Message(MT.TRANSFER_LEADER, from_=to))

    def report_unreachable(self, node: int) -> None:
        self.raft.step(Message(MT.UNREACHABLE, from_=node))

    def report_snapshot(self, node: int, ok: bool) -> None:
        self.raft.step(Message(MT.SNAP_STATUS, from_=node, reject=not ok))

    # -- outputs --
    def has_ready(self) -> bool:
        r = self.raft
        rl = r.raft_log
        if r.msgs or rl.unstable.entries or r.read_states:
            return True
        if rl.has_pending_snapshot() or rl.has_next_ents():
            return True
        if r.lead != self.prev_soft_state.lead or r.state != self.prev_soft_state.raft_state:
            return True
        hs = self.prev_hard_state
        return (r.term, r.vote, rl.committed) != (hs.term, hs.vote, hs.commit)

    def ready(self) -> Ready:
        """Collect what to persist, send and apply; messages are handed over exactly once."""
        r = self.raft
        rl = r.raft_log
        rd = Ready(entries=rl.unstable_entries(), committed_entries=rl.next_ents())
        ss = r.soft_state()
        if ss != self.prev_soft_state:
            rd.soft_state = ss
        hs = r.hard_state()
        if hs != self.prev_hard_state:
            rd.hard_state = hs
        if rl.unstable.snapshot is not None:
            rd.snapshot = rl.unstable.snapshot
        if r.read_states:
            rd.read_states = r.read_states
            r.read_states = []
        if r.msgs:
            rd.messages = r.msgs
            r.msgs = []
        prev = self.prev_hard_state
        rd.must_sync = bool(rd.entries) or hs.term != prev.term or hs.vote != prev.vote
        return rd

    def advance(self, rd: Ready) -> None:
        """Tell the node that rd was persisted, sent and applied."""
        if rd.soft_state is not None:
            self.prev_soft_state = rd.soft_state
        if not rd.hard_state.is_empty():
            self.prev_hard_state = rd.hard_state
        snap = rd.snapshot if rd.snapshot is not None else EMPTY_SNAPSHOT
        self.raft.advance(rd.committed_entries, rd.entries, snap)

    # -- introspection --
    def status(self) -> Status:
        return status(self.raft)

    def basic_status(self) -> Status:
        return basic_status(self.raft)
