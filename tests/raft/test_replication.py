"""Raft paper §5.3 (log replication) and §5.4.2 (committing entries from previous terms),
plus replication machinery: fast rejection hints, flow control, snapshots to laggards,
proposal forwarding and the uncommitted-size limit."""

from __future__ import annotations

import pytest

from nodes.raft import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
    ProgressState,
    ProposalDropped,
    StateType,
    rand,
)
from tests.support.raft_network import (
    Network,
    fixture_storage,
    log_of,
    network_from_storages,
    new_raft,
    read_messages,
)

MT = MessageType


@pytest.fixture(autouse=True)
def _seeded() -> None:
    rand.seed(11)


def applied_data(net: Network, node: int) -> list[bytes]:
    n = net.nodes[node]
    ents = [n.applied[i] for i in sorted(n.applied)]
    return [e.data for e in ents if e.data and e.type == EntryType.NORMAL]


# ---------------------------------------------------------------- §5.3 basic replication
@pytest.mark.parametrize("size", [3, 5])
def test_proposals_replicate_commit_and_apply_everywhere(size: int) -> None:
    net = Network(range(1, size + 1))
    net.elect(1)
    for k in range(5):
        net.propose(1, b"v%d" % k)
    want = [b"v%d" % k for k in range(5)]
    for i in net.nodes:
        assert applied_data(net, i) == want
        assert net.nodes[i].commit == net.nodes[1].commit


def test_follower_forwards_proposals_to_leader() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(2, b"via-follower")
    assert applied_data(net, 3) == [b"via-follower"]


def test_disabled_forwarding_and_no_leader_drop_proposals() -> None:
    net = Network([1, 2, 3], disable_proposal_forwarding=True)
    with pytest.raises(ProposalDropped, match="no leader"):
        net.propose(2, b"x")
    net.elect(1)
    with pytest.raises(ProposalDropped, match="forwarding disabled"):
        net.propose(2, b"x")


def test_commit_reaches_followers_via_heartbeat_bounded_by_match() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1, commit=1)
    r.become_candidate()
    r.become_leader()
    r.raft_log.commit_to(2)
    r.tracker.progress[2].match = 1
    r.tracker.progress[3].match = 2
    read_messages(r)
    r.step(Message(MT.BEAT))
    beats = {m.to: m.commit for m in read_messages(r)}
    assert beats == {2: 1, 3: 2}


# ---------------------------------------------------------------- §5.3 log matching / repair
LEADER_LOG = (1, 1, 1, 4, 4, 5, 5, 6, 6, 6)
FIGURE_7_FOLLOWERS = {
    "a": (1, 1, 1, 4, 4, 5, 5, 6, 6),
    "b": (1, 1, 1, 4),
    "c": (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6),
    "d": (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),
    "e": (1, 1, 1, 4, 4, 4, 4),
    "f": (1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3),
}


@pytest.mark.parametrize("name", sorted(FIGURE_7_FOLLOWERS))
def test_leader_brings_figure_7_follower_in_line(name: str) -> None:
    flog = FIGURE_7_FOLLOWERS[name]
    net = network_from_storages(
        {
            1: fixture_storage([1, 2, 3], entries=log_of(*LEADER_LOG), term=7),
            2: fixture_storage([1, 2, 3], entries=log_of(*flog), term=max(flog)),
        }
    )
    net.nodes[1].rn.campaign()
    net.deliver()
    # Node 3 does not exist in the simulation; its vote is injected, as in etcd's test.
    net.send(Message(MT.VOTE_RESP, from_=3, to=1, term=8))
    assert net.nodes[1].state == StateType.LEADER
    net.deliver()
    leader_log = net.nodes[1].log_entries()
    assert net.nodes[2].log_entries() == leader_log
    assert leader_log[-1].term == 8 and net.nodes[2].commit == len(leader_log)


def test_follower_rejection_hint_skips_a_term() -> None:
    r = new_raft(2, [1, 2, 3], entries=log_of(1, 3, 3, 3), term=3)
    r.step(Message(MT.APP, from_=1, to=2, term=4, log_term=2, index=4))
    (resp,) = read_messages(r)
    assert resp.reject and (resp.reject_hint, resp.log_term) == (1, 1)


def test_fast_log_rejection_needs_one_round_trip() -> None:
    net = network_from_storages(
        {
            1: fixture_storage([1, 2, 3], entries=log_of(1, 4, 4, 4, 4, 4), term=4),
            2: fixture_storage([1, 2, 3], entries=log_of(1, *([2] * 10)), term=2),
            3: fixture_storage([1, 2, 3], entries=log_of(1), term=2),
        }
    )
    net.elect(1)
    rejects = [m for m in net.trace if m.type == MT.APP_RESP and m.reject and m.from_ == 2]
    assert len(rejects) == 1, rejects
    assert net.nodes[2].log_entries() == net.nodes[1].log_entries()


# ---------------------------------------------------------------- §5.4.2 Figure 8 rule
def test_leader_commits_old_term_entry_only_with_own_term_entry() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1, 2), term=2, commit=1)
    r.become_candidate()
    r.become_leader()  # term 3, empty entry at index 3
    assert r.raft_log.last_index() == 3
    r.step(Message(MT.APP_RESP, from_=2, to=1, term=3, index=2))
    assert r.raft_log.committed == 1, "old-term entry committed by counting replicas"
    r.step(Message(MT.APP_RESP, from_=2, to=1, term=3, index=3))
    assert r.raft_log.committed == 3


def test_committed_entries_survive_leader_changes() -> None:
    net = Network([1, 2, 3, 4, 5])
    net.elect(1)
    net.propose(1, b"a")
    net.crash(1)
    net.elect(2)
    net.propose(2, b"b")
    net.crash(2)
    net.elect(3)
    for i in (3, 4, 5):
        assert applied_data(net, i) == [b"a", b"b"]


# ---------------------------------------------------------------- flow control
def test_probe_sends_one_append_until_answered() -> None:
    r = new_raft(1, [1, 2], entries=log_of(1), term=1, commit=1)
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    pr = r.tracker.progress[2]
    assert pr.state == ProgressState.PROBE
    from nodes.raft import leader as leader_mod

    leader_mod.send_append(r, 2)
    for k in range(3):
        r.step(Message(MT.PROP, from_=1, entries=(Entry(0, 0, data=b"%d" % k),)))
    apps = [m for m in read_messages(r) if m.type == MT.APP]
    assert len(apps) == 1 and pr.probe_sent


def test_replicate_state_pipelines_up_to_max_inflight() -> None:
    net = Network([1, 2, 3], max_inflight_msgs=2, max_size_per_msg=0)
    net.elect(1)
    pr = net.nodes[1].raft.tracker.progress[2]
    assert pr.state == ProgressState.REPLICATE
    net.isolate(2)
    before = len(net.trace)
    for k in range(6):
        net.propose(1, b"p%d" % k)
    assert pr.inflights.full() and pr.inflights.count == 2
    net.recover()
    net.tick_all(3)
    assert applied_data(net, 2) == [b"p%d" % k for k in range(6)]
    assert len(net.trace) > before


def test_unreachable_report_moves_replicate_to_probe() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    pr = net.nodes[1].raft.tracker.progress[3]
    assert pr.state == ProgressState.REPLICATE
    net.nodes[1].rn.report_unreachable(3)
    assert pr.state == ProgressState.PROBE


def test_max_uncommitted_entries_size() -> None:
    net = Network([1, 2, 3], max_uncommitted_entries_size=100)
    net.elect(1)
    net.isolate(1)  # nothing commits, so the uncommitted tail only grows
    accepted = 0
    with pytest.raises(ProposalDropped, match="uncommitted"):
        for _ in range(50):
            net.nodes[1].rn.propose(b"x" * 10)
            accepted += 1
    assert accepted == 10
    net.recover()
    net.tick_all(3)
    net.propose(1, b"y" * 10)  # once committed, the budget is free again


# ---------------------------------------------------------------- snapshots
def test_snapshot_sent_to_follower_behind_compacted_log() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.crash(3)
    for k in range(10):
        net.propose(1, b"e%d" % k)
    leader = net.nodes[1]
    net.compact(1, leader.applied_index, data=b"state")
    assert leader.storage.first_index() > net.nodes[3].storage.last_index() + 1
    net.restart(3)
    net.tick_all(3)
    snaps = [m for m in net.trace if m.type == MT.SNAP and m.to == 3]
    assert len(snaps) == 1
    n3 = net.nodes[3]
    assert n3.storage.snapshot().metadata.index == leader.storage.snapshot().metadata.index
    assert n3.storage.snapshot().data == b"state"
    net.propose(1, b"after")
    assert n3.commit == leader.commit and n3.applied[leader.commit].data == b"after"
    assert leader.raft.tracker.progress[3].state == ProgressState.REPLICATE


def test_failed_snapshot_report_returns_to_probe() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.crash(3)
    for k in range(4):
        net.propose(1, b"e%d" % k)
    net.compact(1, net.nodes[1].applied_index)
    pr = net.nodes[1].raft.tracker.progress[3]
    pr.recent_active = True
    net.nodes[1].raft.tracker.progress[3].become_probe()
    from nodes.raft import leader as leader_mod

    leader_mod.send_append(net.nodes[1].raft, 3)
    assert pr.state == ProgressState.SNAPSHOT
    net.nodes[1].rn.report_snapshot(3, ok=False)
    assert pr.state == ProgressState.PROBE and pr.pending_snapshot == 0 and pr.is_paused()


def test_member_added_after_last_snapshot_catches_up_through_it() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    for k in range(4):
        net.propose(1, b"e%d" % k)
    # The leader's only snapshot predates the new member: it is not in its ConfState.
    net.compact(1, net.nodes[1].applied_index, data=b"state")
    net.add_node(4)
    net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_NODE, 4))
    net.tick_all(3)
    n4 = net.nodes[4]
    assert 4 not in n4.storage.snapshot().metadata.conf_state.voters
    assert n4.conf_state.voters == (1, 2, 3, 4) and n4.commit == net.nodes[1].commit
    net.propose(1, b"after")
    assert n4.applied[n4.commit].data == b"after"
    assert n4.raft.promotable()
