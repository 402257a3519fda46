"""More of etcd's raft regression cases, in this core's vocabulary: dueling candidates,
stuck candidates freed by CheckQuorum, leadership superseding, PreVote with split votes and
smaller terms, commit after removal, campaigning while leader, reads with learners."""

from __future__ import annotations

import pytest

from nodes.raft import (
    ConfChange,
    ConfChangeType,
    Message,
    MessageType,
    ReadState,
    StateType,
    rand,
)
from tests.support.raft_network import Network, log_of, new_raft, read_messages

MT = MessageType
FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = (
    StateType.FOLLOWER, StateType.PRE_CANDIDATE, StateType.CANDIDATE, StateType.LEADER
)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    rand.seed(21)


def test_dueling_candidates() -> None:
    net = Network([1, 2, 3])
    net.cut(1, 3)
    net.campaign(1)
    net.campaign(3)  # 2 already voted for 1 in this term: 3 loses
    assert net.nodes[1].state == LEADER and net.nodes[3].state == CANDIDATE
    net.recover()
    net.campaign(3)  # 3's log lacks 1's empty entry: it cannot win, but bumps terms
    assert net.nodes[3].state == FOLLOWER
    assert all(n.term == 3 for n in net.nodes.values())
    assert net.leaders() == []


def test_dueling_pre_candidates_do_not_bump_terms() -> None:
    net = Network([1, 2, 3], pre_vote=True)
    net.cut(1, 3)
    net.campaign(1)
    net.campaign(3)
    assert net.nodes[1].state == LEADER and net.nodes[3].state == FOLLOWER
    net.recover()
    net.campaign(3)  # its PreVote is rejected (stale log): nobody's term moves
    assert net.leaders() == [1]
    assert all(n.term == 2 for n in net.nodes.values())


def test_candidate_concedes_to_leader_of_same_term() -> None:
    net = Network([1, 2, 3])
    net.isolate(1)
    net.campaign(1)
    net.campaign(3)
    net.recover()
    net.tick(3)  # the leader's heartbeat makes the stuck candidate concede
    net.deliver()
    net.propose(3, b"force-replication")
    assert net.nodes[1].state == FOLLOWER and net.nodes[1].term == 2
    assert net.nodes[1].log_entries() == net.nodes[3].log_entries()


def test_campaign_while_leader_is_a_no_op() -> None:
    net = Network([1])
    net.campaign(1)
    term = net.nodes[1].term
    net.campaign(1)
    assert net.nodes[1].state == LEADER and net.nodes[1].term == term


def test_step_ignores_old_term_messages() -> None:
    r = new_raft(1, [1, 2], entries=log_of(1), term=2)
    r.step(Message(MT.APP, from_=2, to=1, term=1, log_term=1, index=1, commit=1))
    assert r.raft_log.committed == 0 and r.term == 2


def test_free_stuck_candidate_with_check_quorum() -> None:
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    net.isolate(1)
    for _ in range(3):  # 3 keeps failing to win and its term races ahead
        net.campaign(3)
    n3 = net.nodes[3]
    assert n3.state == CANDIDATE and n3.term > net.nodes[1].term
    net.recover()
    net.tick(1)  # leader's heartbeat draws a higher-term reply from the stuck candidate
    net.deliver()
    assert net.nodes[1].state == FOLLOWER and net.nodes[1].term == n3.term


def test_leader_superseding_with_check_quorum() -> None:
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    net.crash(1)
    net.campaign(3)  # 2 heard from the leader recently: in lease, it ignores the vote
    assert net.nodes[3].state == CANDIDATE
    for _ in range(10):  # 2 sits out a full election timeout without the leader
        net.nodes[2].rn.tick_quiesced()
    net.campaign(3)
    assert net.nodes[3].state == LEADER


def test_node_with_smaller_term_can_complete_election_with_prevote() -> None:
    net = Network([1, 2, 3], pre_vote=True)
    net.elect(1)
    net.isolate(1)
    # 2 and 3 elect 3 ... then 1 comes back with a smaller term and an older log.
    net.elect(3)
    net.propose(3, b"x")
    net.recover()
    net.isolate(3)
    n1, n2 = net.nodes[1], net.nodes[2]
    assert n1.state == LEADER and n1.term < n2.term  # the stale leader, at a smaller term
    net.campaign(1)  # still believes it leads: no-op
    net.campaign(2)  # 2's PreVote then Vote reach 1, which steps down and votes
    assert n2.state == LEADER and n1.state == FOLLOWER and n1.term == n2.term
    net.propose(2, b"y")
    assert n1.log_entries() == n2.log_entries()


def test_prevote_with_split_vote_resolves() -> None:
    net = Network([1, 2, 3], pre_vote=True)
    net.elect(1)
    net.crash(1)
    net.nodes[2].rn.campaign()
    net.nodes[3].rn.campaign()
    net.deliver()
    # Both may pass the pre-election and split the real vote; a retry settles it.
    for _ in range(4):
        if net.leader():
            break
        net.campaign(2)
    assert net.leader() in (2, 3)


def test_pending_entry_commits_after_voter_removal() -> None:
    net = Network([1, 2])
    net.elect(1)
    net.propose_conf_change(1, ConfChange(ConfChangeType.REMOVE_NODE, 2))
    assert net.nodes[1].conf_state.voters == (1,)
    net.crash(2)
    net.propose(1, b"alone")  # commits with the single remaining voter
    assert net.nodes[1].applied[net.nodes[1].commit].data == b"alone"


def test_read_index_ignores_learner_acks_for_quorum() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.add_node(4)
    net.propose_conf_change(1, ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    net.tick_all(2)
    net.crash(2)
    net.crash(3)
    net.nodes[1].rn.read_index(b"needs-voters")
    net.deliver()
    assert net.nodes[1].read_states == []  # the learner's ack is not a voter quorum
    net.restart(2)
    net.tick_all(1)
    assert net.nodes[1].read_states == [ReadState(net.nodes[1].commit, b"needs-voters")]


def test_learner_responds_to_votes_but_is_not_counted() -> None:
    r = new_raft(4, [1, 2, 3], learners=[4], entries=log_of(1), term=1)
    r.step(Message(MT.VOTE, from_=1, to=4, term=2, log_term=1, index=1))
    (resp,) = read_messages(r)
    assert not resp.reject and r.state == FOLLOWER
