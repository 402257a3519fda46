"""A deterministic in-memory network of RawNodes for the Raft core's tests.

Each simulated node has durable MemoryStorage, a RawNode and an applied log. The network
holds messages in flight and delivers them until quiet, subject to faults: isolated nodes,
cut directed links, a dropped fraction (from a seeded test-local random source), ignored
message kinds, and crashed nodes. Restart rebuilds the RawNode from the durable storage.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nodes.raft import (
    NONE,
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    ReadState,
    Ready,
    Snapshot,
    SnapshotMetadata,
    StateType,
    StepPeerNotFound,
    codec,
)
from nodes.raft.raft import Raft


@dataclass
class SimNode:
    id: int
    storage: MemoryStorage
    rn: RawNode
    cfg: dict[str, Any]
    conf_state: ConfState = field(default_factory=ConfState)
    applied: dict[int, Entry] = field(default_factory=dict)  # index -> entry, all boots
    applied_index: int = 0
    read_states: list[ReadState] = field(default_factory=list)
    up: bool = True

    @property
    def raft(self) -> Any:
        return self.rn.raft

    @property
    def state(self) -> StateType:
        return self.rn.raft.state

    @property
    def term(self) -> int:
        return self.rn.raft.term

    @property
    def commit(self) -> int:
        return self.rn.raft.raft_log.committed

    def log_entries(self) -> list[Entry]:
        """The node's whole log including unstable entries (from first index)."""
        return self.rn.raft.raft_log.all_entries()


def make_config(node_id: int, storage: MemoryStorage, **cfg: Any) -> Config:
    return Config(id=node_id, storage=storage, **cfg)


class Network:
    def __init__(
        self,
        ids: Iterable[int],
        *,
        bootstrap: bool = True,
        voters: Iterable[int] | None = None,
        seed: int = 0,
        **cfg: Any,
    ) -> None:
        ids = list(ids)
        self.nodes: dict[int, SimNode] = {}
        self.in_flight: list[Message] = []
        self.cut_links: set[tuple[int, int]] = set()
        self.drop_rate: dict[tuple[int, int], float] = {}
        self.ignored: set[MessageType] = set()
        self.rng = random.Random(seed)  # fault decisions only, not election timeouts
        self.delivered = 0
        self.trace: list[Message] = []  # every delivered message, in order
        self.drop_if: Callable[[Message], bool] | None = None  # ad-hoc fault predicate
        self.on_ready: Callable[[SimNode, Ready], None] | None = None  # sees each Ready
        boot_voters = list(voters) if voters is not None else ids
        for i in ids:
            self.add_node(i, bootstrap_voters=boot_voters if bootstrap else None, **cfg)

    # ---------------------------------------------------------------- membership of the sim
    def add_node(
        self,
        node_id: int,
        *,
        bootstrap_voters: list[int] | None = None,
        storage: MemoryStorage | None = None,
        **cfg: Any,
    ) -> SimNode:
        st = storage if storage is not None else MemoryStorage()
        rn = RawNode(make_config(node_id, st, **cfg))
        node = SimNode(node_id, st, rn, dict(cfg))
        if bootstrap_voters is not None:
            rn.bootstrap(bootstrap_voters)
        self.nodes[node_id] = node
        self.process_ready(node)
        return node

    def crash(self, node_id: int) -> None:
        """Stop a node: its unpersisted state is lost, messages to it are dropped."""
        n = self.nodes[node_id]
        n.up = False
        lost = [m for m in self.in_flight if m.to == node_id]
        self.in_flight = [m for m in self.in_flight if m.to != node_id]
        for m in lost:
            self.lose(m)

    def lose(self, m: Message) -> None:
        """Drop m; a snapshot's sender learns of the failure, as from a real transport."""
        sender = self.nodes.get(m.from_)
        if m.type == MessageType.SNAP and sender is not None and sender.up:
            sender.rn.report_snapshot(m.to, False)

    def restart(self, node_id: int) -> None:
        """Rebuild the node's RawNode from its durable storage (as after a crash)."""
        n = self.nodes[node_id]
        n.rn = RawNode(make_config(node_id, n.storage, **n.cfg))
        n.conf_state = n.storage.snapshot().metadata.conf_state
        n.applied_index = n.storage.snapshot().metadata.index
        n.up = True
        self.process_ready(n)

    # ---------------------------------------------------------------- faults
    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut(node_id, other)

    def cut(self, a: int, b: int) -> None:
        self.cut_links.add((a, b))
        self.cut_links.add((b, a))

    def partition(self, *groups: Iterable[int]) -> None:
        gs = [set(g) for g in groups]
        for i, ga in enumerate(gs):
            for gb in gs[i + 1 :]:
                for a in ga:
                    for b in gb:
                        self.cut(a, b)

    def drop(self, a: int, b: int, fraction: float) -> None:
        self.drop_rate[(a, b)] = fraction

    def ignore(self, t: MessageType) -> None:
        self.ignored.add(t)

    def recover(self) -> None:
        self.cut_links.clear()
        self.drop_rate.clear()
        self.ignored.clear()
        self.drop_if = None

    def _passes(self, m: Message) -> bool:
        if m.type in self.ignored or (m.from_, m.to) in self.cut_links:
            return False
        if self.drop_if is not None and self.drop_if(m):
            return False
        dst = self.nodes.get(m.to)
        if dst is None or not dst.up:
            return False
        rate = self.drop_rate.get((m.from_, m.to), 0.0)
        return not (rate > 0 and self.rng.random() < rate)

    # ---------------------------------------------------------------- the Ready loop
    def process_ready(self, n: SimNode) -> list[Message]:
        """One Ready iteration as the application does it: persist, send, apply, advance."""
        if not n.up or not n.rn.has_ready():
            return []
        rd = n.rn.ready()
        if self.on_ready is not None:
            self.on_ready(n, rd)
        if not rd.snapshot.is_empty():
            n.storage.apply_snapshot(rd.snapshot)
            n.conf_state = rd.snapshot.metadata.conf_state
            n.applied_index = rd.snapshot.metadata.index
        n.storage.append(rd.entries)
        if not rd.hard_state.is_empty():
            n.storage.set_hard_state(rd.hard_state)
        for e in rd.committed_entries:
            self._apply(n, e)
        n.read_states.extend(rd.read_states)
        n.rn.advance(rd)
        self.in_flight.extend(rd.messages)
        return rd.messages

    def _apply(self, n: SimNode, e: Entry) -> None:
        prev = n.applied.get(e.index)
        if prev is not None and prev != e:
            raise AssertionError(f"node {n.id} re-applied index {e.index}: {prev} != {e}")
        n.applied[e.index] = e
        n.applied_index = e.index
        if e.type == EntryType.CONF_CHANGE:
            n.conf_state = n.rn.apply_conf_change(codec.decode_conf_change(e.data))

    def flush(self) -> None:
        for n in self.nodes.values():
            # A node can produce several Readys in a row (e.g. after applying conf changes).
            for _ in range(4):
                if not self.process_ready(n):
                    break

    def deliver_one(self, m: Message) -> None:
        if not self._passes(m):
            self.lose(m)
            return
        self.delivered += 1
        self.trace.append(m)
        dst = self.nodes[m.to]
        try:
            dst.rn.step(m)
        except (StepPeerNotFound, ProposalDropped):
            pass  # e.g. a forwarded proposal reaching a node that lost leadership
        if m.type == MessageType.SNAP and self.nodes[m.from_].up:
            self.nodes[m.from_].rn.report_snapshot(m.to, True)

    def deliver(self, max_rounds: int = 1000) -> int:
        """Deliver messages until quiet (bounded). Returns the number of rounds used."""
        for rnd in range(max_rounds):
            self.flush()
            if not self.in_flight:
                return rnd
            batch, self.in_flight = self.in_flight, []
            for m in batch:
                self.deliver_one(m)
        raise AssertionError(f"network did not quiesce in {max_rounds} rounds")

    def send(self, *msgs: Message) -> None:
        self.in_flight.extend(msgs)
        self.deliver()

    # ---------------------------------------------------------------- helpers
    def tick(self, node_id: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[node_id].rn.tick()

    def tick_all(self, n: int = 1, deliver: bool = True) -> None:
        for _ in range(n):
            for node in self.nodes.values():
                if node.up:
                    node.rn.tick()
            if deliver:
                self.deliver()

    def campaign(self, node_id: int) -> None:
        self.nodes[node_id].rn.campaign()
        self.deliver()

    def propose(self, node_id: int, data: bytes) -> None:
        self.nodes[node_id].rn.propose(data)
        self.deliver()

    def propose_conf_change(self, node_id: int, cc: ConfChange) -> None:
        self.nodes[node_id].rn.propose_conf_change(cc)
        self.deliver()

    def leaders(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.up and n.state == StateType.LEADER]

    def leader(self) -> int:
        ls = self.leaders()
        if len(ls) != 1:
            return NONE
        return ls[0]

    def elect(self, node_id: int) -> None:
        """Make node_id leader by campaigning; asserts it won."""
        self.campaign(node_id)
        st = self.nodes[node_id].state
        assert st == StateType.LEADER, f"node {node_id} did not win: {st.name}"

    def compact(self, node_id: int, index: int, data: bytes = b"") -> None:
        n = self.nodes[node_id]
        n.storage.create_snapshot(index, n.conf_state, data)
        n.storage.compact(index)


# -------------------------------------------------------------------- single-Raft fixtures
def fixture_storage(
    voters: Iterable[int],
    *,
    learners: Iterable[int] = (),
    entries: Iterable[Entry] = (),
    term: int = 0,
    vote: int = 0,
    commit: int = 0,
) -> MemoryStorage:
    """Storage holding a membership, a log and a hard state, with realistic terms.

    A non-empty log at term 0 cannot happen in a real cluster (terms start at 1), so fixtures
    refuse it: tests built on impossible states hide real bugs.
    """
    ents = list(entries)
    for e in ents:
        if e.term < 1:
            raise ValueError(f"fixture entry {e.index} has term {e.term}: terms start at 1")
    if ents and term < ents[-1].term:
        raise ValueError(f"fixture term {term} is below the log's last term {ents[-1].term}")
    st = MemoryStorage()
    st.snap = Snapshot(
        metadata=SnapshotMetadata(ConfState(tuple(voters), tuple(learners)), 0, 0)
    )
    st.append(ents)
    st.set_hard_state(HardState(term, vote, commit))
    return st


def log_of(*terms: int) -> list[Entry]:
    """Entries at indexes 1.. with the given terms."""
    return [Entry(t, i + 1) for i, t in enumerate(terms)]


def new_raft(node_id: int, voters: Iterable[int], **kw: Any) -> Any:
    """A bare Raft (no RawNode) over a fixture storage; config keywords pass through."""
    fkeys = ("learners", "entries", "term", "vote", "commit")
    fx = {k: kw.pop(k) for k in fkeys if k in kw}
    return Raft(make_config(node_id, fixture_storage(voters, **fx), **kw))


def read_messages(r: Any) -> list[Message]:
    msgs: list[Message] = r.msgs
    r.msgs = []
    return msgs


def network_from_storages(storages: dict[int, MemoryStorage], **cfg: Any) -> Network:
    net = Network([], bootstrap=False, **cfg)
    for i, st in storages.items():
        net.add_node(i, storage=st, **cfg)
    return net
