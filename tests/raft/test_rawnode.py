"""RawNode and Ready: what must be persisted, sent and applied, and in which iteration."""

from __future__ import annotations

import pytest

from nodes.raft import (
    Config,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    StateType,
    StepLocalMsg,
    StepPeerNotFound,
    rand,
)
from tests.support.raft_network import Network


@pytest.fixture(autouse=True)
def _seeded() -> None:
    rand.seed(1)


def test_bootstrap_ready_persists_and_applies_conf_entries() -> None:
    st = MemoryStorage()
    rn = RawNode(Config(1, st))
    rn.bootstrap([1, 2, 3])
    assert rn.has_ready()
    rd = rn.ready()
    assert rd.hard_state == HardState(term=1, vote=0, commit=3)
    assert [e.type for e in rd.entries] == [EntryType.CONF_CHANGE] * 3
    assert rd.committed_entries == rd.entries and rd.must_sync
    st.append(rd.entries)
    st.set_hard_state(rd.hard_state)
    rn.advance(rd)
    assert not rn.has_ready()
    assert rn.status().conf_state.voters == (1, 2, 3)


def test_single_node_propose_round_trip() -> None:
    st = MemoryStorage()
    rn = RawNode(Config(1, st))
    rn.bootstrap([1])
    applied: list[bytes] = []
    for step in range(10):
        if step == 1:
            rn.campaign()
        if step == 3:
            rn.propose(b"hello")
        while rn.has_ready():
            rd = rn.ready()
            st.append(rd.entries)
            if not rd.hard_state.is_empty():
                st.set_hard_state(rd.hard_state)
            applied += [e.data for e in rd.committed_entries if e.type == EntryType.NORMAL]
            rn.advance(rd)
    assert rn.status().soft_state.raft_state == StateType.LEADER
    assert applied[-1] == b"hello"


def test_messages_are_handed_out_once_and_soft_state_only_on_change() -> None:
    net = Network([1, 2, 3])
    n1 = net.nodes[1].rn
    n1.campaign()
    rd = n1.ready()
    assert rd.soft_state is not None and rd.soft_state.raft_state == StateType.CANDIDATE
    assert len(rd.messages) == 2 and rd.must_sync  # term and vote changed
    n1.advance(rd)
    assert not n1.has_ready()
    rd2 = n1.ready()
    assert rd2.messages == [] and rd2.soft_state is None and rd2.hard_state.is_empty()


def test_commit_only_change_does_not_require_sync() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    n2 = net.nodes[2].rn
    n2.step(Message(MessageType.HEARTBEAT, from_=1, to=2, term=2,
                    commit=net.nodes[2].commit))
    rd = n2.ready()
    assert not rd.must_sync


def test_step_refuses_local_and_unknown_peer_messages() -> None:
    net = Network([1, 2, 3])
    rn = net.nodes[1].rn
    with pytest.raises(StepLocalMsg):
        rn.step(Message(MessageType.HUP))
    with pytest.raises(StepPeerNotFound):
        rn.step(Message(MessageType.APP_RESP, from_=9, to=1, term=1))


def test_status_shows_progress_on_leader_only() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    s = net.nodes[1].rn.status()
    assert set(s.progress) == {1, 2, 3} and s.progress[2].match == net.nodes[1].commit
    assert net.nodes[2].rn.status().progress == {}
    assert net.nodes[2].rn.basic_status().soft_state.lead == 1


def test_restart_from_storage_recovers_hard_state_and_log() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"durable")
    net.crash(2)
    net.restart(2)
    n2 = net.nodes[2]
    assert n2.term == 2 and n2.commit == net.nodes[1].commit
    assert n2.log_entries() == net.nodes[1].log_entries()
    assert n2.conf_state.voters == (1, 2, 3)


def test_max_committed_size_per_ready_limits_each_ready() -> None:
    st = MemoryStorage()
    rn = RawNode(Config(1, st, max_committed_size_per_ready=1))
    rn.bootstrap([1, 2, 3])
    sizes = []
    for _ in range(10):
        if not rn.has_ready():
            break
        rd = rn.ready()
        st.append(rd.entries)
        if not rd.hard_state.is_empty():
            st.set_hard_state(rd.hard_state)
        sizes.append(len(rd.committed_entries))
        rn.advance(rd)
    assert sizes == [1, 1, 1]  # the three bootstrap entries, one per Ready
