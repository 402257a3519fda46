"""Leadership transfer (etcd's TestLeaderTransfer* cases): to up-to-date, slow, snapshotted,
removed, learner and non-existent nodes, its timeout, and proposals blocked meanwhile."""

from __future__ import annotations

import pytest

from nodes.raft import (
    ConfChange,
    ConfChangeType,
    MessageType,
    ProposalDropped,
    StateType,
    rand,
)
from tests.support.raft_network import Network

MT = MessageType


@pytest.fixture(autouse=True)
def _seeded() -> None:
    rand.seed(5)


def lead_of(net: Network, node: int) -> int:
    return int(net.nodes[node].raft.lead)


def transferee(net: Network, node: int) -> int:
    return int(net.nodes[node].raft.lead_transferee)


@pytest.mark.parametrize(("pre_vote", "check_quorum"), [(False, False), (True, True)])
def test_transfer_to_up_to_date_node(pre_vote: bool, check_quorum: bool) -> None:
    net = Network([1, 2, 3], pre_vote=pre_vote, check_quorum=check_quorum)
    net.elect(1)
    net.nodes[1].rn.transfer_leader(2)
    net.deliver()
    assert net.leaders() == [2] and net.nodes[2].term == 3
    assert lead_of(net, 1) == 2 and transferee(net, 1) == 0
    # And back again, which exercises the transfer from a fresh leader.
    net.nodes[2].rn.transfer_leader(1)
    net.deliver()
    assert net.leaders() == [1]


def test_transfer_requested_on_follower_is_forwarded() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.nodes[3].rn.transfer_leader(2)
    net.deliver()
    assert net.leaders() == [2]


def test_transfer_to_slow_follower_catches_it_up_first() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for k in range(5):
        net.propose(1, b"x%d" % k)
    net.recover()
    assert net.nodes[3].storage.last_index() < net.nodes[1].storage.last_index()
    net.nodes[1].rn.transfer_leader(3)
    net.deliver()
    assert net.leaders() == [3]
    timeouts = [m for m in net.trace if m.type == MT.TIMEOUT_NOW]
    app_to_3 = [i for i, m in enumerate(net.trace) if m.type == MT.APP and m.to == 3]
    assert len(timeouts) == 1 and app_to_3[0] < net.trace.index(timeouts[0])


def test_transfer_to_follower_behind_snapshot() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for k in range(5):
        net.propose(1, b"x%d" % k)
    net.compact(1, net.nodes[1].applied_index)
    net.recover()
    net.tick_all(2)  # heartbeat replies mark 3 active so the leader may send a snapshot
    net.nodes[1].rn.transfer_leader(3)
    net.deliver()
    net.tick_all(2)
    assert net.leaders() == [3]
    assert any(m.type == MT.SNAP and m.to == 3 for m in net.trace)


def test_transfer_to_self_and_to_non_existent_node_are_ignored() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    for target in (1, 4):
        net.nodes[1].rn.transfer_leader(target)
        net.deliver()
        assert net.leaders() == [1] and transferee(net, 1) == 0
    net.propose(1, b"still-accepting")


def test_transfer_blocks_proposals_then_times_out() -> None:
    net = Network([1, 2, 3], election_tick=10)
    net.elect(1)
    net.isolate(3)
    net.nodes[1].rn.transfer_leader(3)
    net.deliver()
    assert transferee(net, 1) == 3
    with pytest.raises(ProposalDropped, match="transfer"):
        net.nodes[1].rn.propose(b"blocked")
    for _ in range(9):
        net.tick(1)
    assert transferee(net, 1) == 3
    net.tick(1)  # one election timeout after the request: the transfer is abandoned
    assert transferee(net, 1) == 0 and net.leaders() == [1]
    net.propose(1, b"accepted-again")


def test_repeated_request_keeps_timer_and_new_target_replaces_old() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.isolate(2)
    net.nodes[1].rn.transfer_leader(3)
    net.tick(1, 5)
    net.nodes[1].rn.transfer_leader(3)  # same target: the timer keeps running
    net.tick(1, 5)
    assert transferee(net, 1) == 0
    net.nodes[1].rn.transfer_leader(3)
    net.nodes[1].rn.transfer_leader(2)  # a different target aborts the first transfer
    assert transferee(net, 1) == 2


def test_transfer_aborted_when_transferee_removed() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.nodes[1].rn.transfer_leader(3)
    assert transferee(net, 1) == 3
    net.nodes[1].rn.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    assert transferee(net, 1) == 0 and net.leaders() == [1]


def test_transfer_to_removed_node_is_ignored() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose_conf_change(1, ConfChange(ConfChangeType.REMOVE_NODE, 3))
    assert 3 not in net.nodes[1].conf_state.voters
    net.nodes[1].rn.transfer_leader(3)
    net.deliver()
    assert net.leaders() == [1] and transferee(net, 1) == 0
    assert net.nodes[3].state == StateType.FOLLOWER


def test_transfer_to_learner_is_refused() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.add_node(4)
    net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    net.tick_all(2)
    net.nodes[1].rn.transfer_leader(4)
    net.deliver()
    assert net.leaders() == [1] and transferee(net, 1) == 0
