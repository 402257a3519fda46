"""Linearizable reads: ReadIndex (safe), lease-based reads, the new-leader rule, and
quiesced ticking with CheckQuorum (a quiesced leader's lease still expires)."""

from __future__ import annotations

import pytest

from nodes.raft import Message, MessageType, ReadOnlyOption, ReadState, StateType, rand
from tests.support.raft_network import Network, log_of, new_raft, read_messages

MT = MessageType
LEASE = ReadOnlyOption.LEASE_BASED


@pytest.fixture(autouse=True)
def _seeded() -> None:
    rand.seed(9)


def test_read_index_on_leader_after_quorum_heartbeat() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"w")
    net.nodes[1].rn.read_index(b"ctx-1")
    assert net.nodes[1].read_states == []  # not before the heartbeat round
    net.deliver()
    assert net.nodes[1].read_states == [ReadState(net.nodes[1].commit, b"ctx-1")]
    beats = [m for m in net.trace if m.type == MT.HEARTBEAT and m.context == b"ctx-1"]
    assert len(beats) == 2


def test_read_index_on_follower_is_forwarded() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"w")
    net.nodes[3].rn.read_index(b"r3")
    net.deliver()
    assert net.nodes[3].read_states == [ReadState(net.nodes[1].commit, b"r3")]


def test_read_index_without_quorum_never_completes() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.nodes[1].rn.read_index(b"lost")
    net.tick_all(5)
    assert net.nodes[1].read_states == []


def test_later_ack_confirms_earlier_reads() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.ignore(MT.HEARTBEAT_RESP)
    net.nodes[1].rn.read_index(b"a")
    net.nodes[1].rn.read_index(b"b")
    net.deliver()
    net.recover()
    net.tick_all(1)  # heartbeat carries the last pending ctx; its acks release both
    assert [rs.request_ctx for rs in net.nodes[1].read_states] == [b"a", b"b"]


def test_new_leader_serves_reads_only_after_committing_in_its_term() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1, 1), term=1, commit=1)
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    r.step(Message(MT.READ_INDEX, context=b"early"))
    assert r.read_states == [] and read_messages(r) == []
    r.step(Message(MT.APP_RESP, from_=2, to=1, term=2, index=3))  # commits index 3 (term 2)
    assert r.raft_log.committed == 3
    beats = [m for m in read_messages(r) if m.type == MT.HEARTBEAT]
    assert {m.context for m in beats} == {b"early"}
    r.step(Message(MT.HEARTBEAT_RESP, from_=2, to=1, term=2, context=b"early"))
    assert r.read_states == [ReadState(3, b"early")]


def test_singleton_leader_reads_at_once() -> None:
    net = Network([1])
    net.elect(1)
    net.nodes[1].rn.read_index(b"x")
    net.deliver()
    assert net.nodes[1].read_states == [ReadState(net.nodes[1].commit, b"x")]


def test_lease_read_needs_no_heartbeat_round() -> None:
    net = Network([1, 2, 3], check_quorum=True, read_only_option=LEASE)
    net.elect(1)
    net.tick_all(1)  # one acknowledged heartbeat round starts the lease
    before = len(net.trace)
    net.nodes[1].rn.read_index(b"lease")
    net.deliver()
    assert net.nodes[1].read_states == [ReadState(net.nodes[1].commit, b"lease")]
    assert not [m for m in net.trace[before:] if m.type == MT.HEARTBEAT]


def test_lease_read_isolated_leader_steps_down_instead_of_serving_stale() -> None:
    net = Network([1, 2, 3], check_quorum=True, read_only_option=LEASE)
    net.elect(1)
    net.isolate(1)
    net.tick(1, 20)
    assert net.nodes[1].state == StateType.FOLLOWER
    net.nodes[1].rn.read_index(b"stale?")
    net.deliver()
    assert net.nodes[1].read_states == []


def test_lease_read_is_never_stale_when_a_newer_leader_exists() -> None:
    # etcd trusts the lease until the next CheckQuorum round: partitioned right after a
    # round, the old leader keeps it for almost two election timeouts, while the others may
    # elect a new leader after one. Here the lease is dated by acknowledged heartbeats.
    net = Network([1, 2, 3], check_quorum=True, read_only_option=LEASE)
    net.elect(1)
    net.tick_all(1)
    net.isolate(1)
    old = net.nodes[1]
    served: list[tuple[ReadState, int]] = []
    for k in range(40):
        net.tick_all(1)
        new_leaders = [i for i in net.leaders() if i != 1]
        if new_leaders:
            net.propose(new_leaders[0], b"w%d" % k)
        newest_commit = max(net.nodes[i].commit for i in (2, 3))
        if old.state == StateType.LEADER:
            old.rn.read_index(b"r%d" % k)
            net.deliver()
            served += [(rs, newest_commit) for rs in old.read_states]
            old.read_states.clear()
    assert net.leaders() != [1], "the majority side never elected a leader"
    assert served, "the old leader never used its lease"
    for rs, newest in served:
        assert rs.index >= newest, f"stale lease read at {rs.index}, commit is {newest}"


def test_no_lease_reads_after_sending_timeout_now() -> None:
    net = Network([1, 2, 3], check_quorum=True, read_only_option=LEASE)
    net.elect(1)
    net.tick_all(1)
    net.ignore(MT.TIMEOUT_NOW)
    net.nodes[1].rn.transfer_leader(2)
    net.deliver()
    net.nodes[1].rn.read_index(b"x")
    assert net.nodes[1].read_states == []  # forced campaigns ignore leases: quorum round


# ---------------------------------------------------------------- quiesced ticking
def test_tick_quiesced_never_campaigns_or_heartbeats() -> None:
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    before = len(net.trace)
    for _ in range(100):
        for n in net.nodes.values():
            n.rn.tick_quiesced()
    net.deliver()
    assert len(net.trace) == before
    assert net.leaders() == [1]


def test_quiesced_leader_lease_expires_with_check_quorum() -> None:
    net = Network([1, 2, 3], check_quorum=True, read_only_option=LEASE)
    net.elect(1)
    for _ in range(10):  # one election timeout of quiesced ticks
        for n in net.nodes.values():
            n.rn.tick_quiesced()
    # The leader may no longer answer from its lease: the read costs a quorum round.
    net.nodes[1].rn.read_index(b"after-quiesce")
    assert net.nodes[1].read_states == []
    net.deliver()
    assert [rs.request_ctx for rs in net.nodes[1].read_states] == [b"after-quiesce"]
    assert any(m.type == MT.HEARTBEAT and m.context == b"after-quiesce" for m in net.trace)


def test_quiesced_followers_leave_their_lease() -> None:
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    n3 = net.nodes[3].raft
    vote = Message(MT.VOTE, from_=2, to=3, term=3, log_term=2, index=99)
    n3.step(vote)
    assert read_messages(n3) == []  # in lease: ignored
    for _ in range(10):
        net.nodes[3].rn.tick_quiesced()
    n3.step(Message(MT.VOTE, from_=2, to=3, term=3, log_term=2, index=99))
    (resp,) = read_messages(n3)
    assert not resp.reject and n3.vote == 2


def test_quiesced_leader_wakes_and_keeps_leadership_if_quorum_alive() -> None:
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    net.tick_all(3)
    for _ in range(5):
        for n in net.nodes.values():
            n.rn.tick_quiesced()
    net.tick_all(12)
    assert net.leaders() == [1]
