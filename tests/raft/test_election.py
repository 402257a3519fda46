"""Raft paper §5.1-5.2 (terms, elections) and §5.4.1 (election restriction), plus etcd's
election regression cases: voting from every state, PreVote, CheckQuorum leases, the vote
right after start-up, the disruptive rejoining follower, and non-members/learners."""

from __future__ import annotations

import pytest

from nodes.raft import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
    StateType,
    codec,
    rand,
)
from nodes.raft.types import CAMPAIGN_TRANSFER, vote_resp_type
from tests.support.raft_network import Network, log_of, new_raft, read_messages

MT = MessageType
FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = (
    StateType.FOLLOWER, StateType.PRE_CANDIDATE, StateType.CANDIDATE, StateType.LEADER
)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    rand.seed(7)


# ---------------------------------------------------------------- §5.1 terms
def test_bootstrapped_cluster_starts_at_term_1_and_first_leader_at_term_2() -> None:
    net = Network([1, 2, 3])
    assert all(n.term == 1 and n.commit == 3 for n in net.nodes.values())
    net.elect(1)
    assert {n.term for n in net.nodes.values()} == {2}
    # The new leader's empty entry is committed everywhere, at the leader's term.
    for n in net.nodes.values():
        assert n.commit == 4 and n.log_entries()[-1].term == 2


def test_higher_term_message_makes_any_role_follower() -> None:
    for setup in ("follower", "candidate", "leader"):
        r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1)
        if setup != "follower":
            r.become_candidate()
        if setup == "leader":
            r.become_leader()
        r.step(Message(MT.APP, from_=2, to=1, term=5, log_term=1, index=1))
        assert (r.state, r.term, r.lead) == (FOLLOWER, 5, 2), setup


def test_stale_term_message_is_ignored() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1, 2), term=3)
    r.step(Message(MT.APP, from_=2, to=1, term=2, log_term=2, index=2,
                   entries=(Entry(2, 3),), commit=3))
    assert r.raft_log.last_index() == 2 and r.term == 3
    assert read_messages(r) == []


# ---------------------------------------------------------------- §5.2 elections
@pytest.mark.parametrize("pre_vote", [False, True])
@pytest.mark.parametrize("size", [3, 5])
def test_leader_election(size: int, pre_vote: bool) -> None:
    net = Network(range(1, size + 1), pre_vote=pre_vote)
    net.elect(1)
    assert net.leaders() == [1]
    assert all(n.state == FOLLOWER for i, n in net.nodes.items() if i != 1)


@pytest.mark.parametrize("pre_vote", [False, True])
def test_election_without_quorum_does_not_elect(pre_vote: bool) -> None:
    net = Network([1, 2, 3, 4, 5], pre_vote=pre_vote)
    for i in (3, 4, 5):
        net.crash(i)
    net.campaign(1)
    n1 = net.nodes[1]
    if pre_vote:
        # A failed pre-election leaves the term alone: nobody is disrupted.
        assert (n1.state, n1.term) == (PRE_CANDIDATE, 1)
    else:
        assert (n1.state, n1.term) == (CANDIDATE, 2)


@pytest.mark.parametrize("pre_vote", [False, True])
def test_leadership_cycles_through_every_node(pre_vote: bool) -> None:
    net = Network([1, 2, 3], pre_vote=pre_vote)
    for _ in range(2):
        for i in (1, 2, 3):
            net.elect(i)
            assert net.leaders() == [i]


def test_single_node_elects_itself() -> None:
    net = Network([1])
    net.campaign(1)
    assert net.nodes[1].state == LEADER and net.nodes[1].term == 2


def test_candidate_becomes_follower_on_append_from_leader_of_same_term() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1)
    r.become_candidate()
    r.step(Message(MT.APP, from_=2, to=1, term=2, log_term=1, index=1))
    assert (r.state, r.lead, r.term) == (FOLLOWER, 2, 2)


def test_randomized_election_timeout_range() -> None:
    r = new_raft(1, [1, 2, 3], election_tick=10)
    seen = set()
    for _ in range(400):
        r.reset_randomized_election_timeout()
        seen.add(r.randomized_election_timeout)
    assert seen == set(range(10, 20))


@pytest.mark.parametrize("pre_vote", [False, True])
def test_follower_campaigns_after_election_timeout(pre_vote: bool) -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1, pre_vote=pre_vote)
    for _ in range(2 * 10):
        r.tick()
    msgs = read_messages(r)
    kind = MT.PRE_VOTE if pre_vote else MT.VOTE
    assert sorted(m.to for m in msgs if m.type == kind) == [2, 3]
    assert all(m.term == 2 and m.index == 1 and m.log_term == 1 for m in msgs)
    assert r.term == (1 if pre_vote else 2)


# ---------------------------------------------------------------- votes from every state
@pytest.mark.parametrize("vote_type", [MT.VOTE, MT.PRE_VOTE])
@pytest.mark.parametrize("state", [FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER])
def test_vote_from_any_state(vote_type: MessageType, state: StateType) -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1)
    if state == FOLLOWER:
        r.become_follower(r.term, 3)
    elif state == PRE_CANDIDATE:
        r.become_pre_candidate()
    elif state == CANDIDATE:
        r.become_candidate()
    else:
        r.become_candidate()
        r.become_leader()
    read_messages(r)
    orig_term, orig_vote = r.term, r.vote
    new_term = r.term + 1
    r.step(Message(vote_type, from_=2, to=1, term=new_term, log_term=new_term, index=42))
    (resp,) = read_messages(r)
    assert resp.type == vote_resp_type(vote_type) and not resp.reject
    assert resp.term == new_term
    if vote_type == MT.VOTE:
        assert (r.state, r.term, r.vote) == (FOLLOWER, new_term, 2)
    else:
        # A PreVote never changes our state, term or vote.
        assert (r.state, r.term, r.vote) == (state, orig_term, orig_vote)


# ---------------------------------------------------------------- §5.4.1 election restriction
@pytest.mark.parametrize(
    ("voter_log", "cand_last_term", "cand_last_index", "granted"),
    [
        ((1, 1), 1, 2, True),  # same log
        ((1, 1), 1, 1, False),  # shorter log of the same last term
        ((1, 1), 2, 1, True),  # higher last term wins even if shorter
        ((1, 2), 1, 3, False),  # lower last term loses even if longer
        ((1, 2), 2, 2, True),
        ((1, 2), 2, 1, False),
        ((1, 2), 3, 1, True),
    ],
)
@pytest.mark.parametrize("vote_type", [MT.VOTE, MT.PRE_VOTE])
def test_vote_only_for_up_to_date_log(
    voter_log: tuple[int, ...], cand_last_term: int, cand_last_index: int, granted: bool,
    vote_type: MessageType,
) -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(*voter_log), term=2)
    r.step(Message(vote_type, from_=2, to=1, term=3, log_term=cand_last_term,
                   index=cand_last_index))
    (resp,) = read_messages(r)
    assert resp.reject is (not granted)


def test_one_vote_per_term() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=3, vote=2)
    r.step(Message(MT.VOTE, from_=3, to=1, term=3, log_term=1, index=1))
    assert read_messages(r)[0].reject
    # The same candidate asking again (a retransmission) is granted again.
    r.step(Message(MT.VOTE, from_=2, to=1, term=3, log_term=1, index=1))
    assert not read_messages(r)[0].reject
    assert r.vote == 2


def test_lower_term_prevote_is_rejected_with_our_term() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1, 3), term=4)
    r.step(Message(MT.PRE_VOTE, from_=2, to=1, term=3, log_term=3, index=2))
    (resp,) = read_messages(r)
    assert resp.type == MT.PRE_VOTE_RESP and resp.reject and resp.term == 4


def test_higher_term_prevote_never_changes_our_term() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1)
    r.step(Message(MT.PRE_VOTE, from_=2, to=1, term=9, log_term=0, index=0))
    (resp,) = read_messages(r)
    assert resp.reject and r.term == 1


def test_rejected_prevote_with_higher_term_updates_term() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1, pre_vote=True)
    r.step(Message(MT.HUP))
    read_messages(r)
    r.step(Message(MT.PRE_VOTE_RESP, from_=2, to=1, term=5, reject=True))
    assert (r.state, r.term) == (FOLLOWER, 5)


# ---------------------------------------------------------------- CheckQuorum
def test_check_quorum_leader_steps_down_when_isolated() -> None:
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    net.isolate(1)
    # The first CheckQuorum round still sees the election's replies as recent activity.
    for _ in range(10):
        net.tick(1)
        net.deliver()
    assert net.nodes[1].state == LEADER
    for _ in range(10):
        net.tick(1)
        net.deliver()
    assert net.nodes[1].state == FOLLOWER


def test_leader_without_check_quorum_stays_leader_when_isolated() -> None:
    net = Network([1, 2, 3], check_quorum=False)
    net.elect(1)
    net.isolate(1)
    for _ in range(30):
        net.tick(1)
        net.deliver()
    assert net.nodes[1].state == LEADER


def test_follower_in_lease_ignores_vote_but_not_forced_transfer() -> None:
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    n3 = net.nodes[3].raft
    term = n3.term
    n3.step(Message(MT.VOTE, from_=2, to=3, term=term + 1, log_term=term, index=99))
    assert read_messages(n3) == [] and n3.term == term and n3.lead == 1
    n3.step(Message(MT.VOTE, from_=2, to=3, term=term + 1, log_term=term, index=99,
                    context=CAMPAIGN_TRANSFER))
    (resp,) = read_messages(n3)
    assert not resp.reject and n3.term == term + 1 and n3.vote == 2


def test_vote_right_after_startup_with_check_quorum() -> None:
    # Fresh nodes know no leader: their lease must not block the very first election.
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(2)
    net2 = Network([1, 2, 3], check_quorum=True, pre_vote=True)
    net2.elect(3)


def test_follower_outside_lease_grants_vote() -> None:
    net = Network([1, 2, 3], check_quorum=True)
    net.elect(1)
    net.isolate(1)
    n3 = net.nodes[3].raft
    for _ in range(10):  # a full election timeout without hearing from the leader
        n3.tick_quiesced()
    n3.step(Message(MT.VOTE, from_=2, to=3, term=3, log_term=2, index=99))
    (resp,) = read_messages(n3)
    assert not resp.reject and (n3.term, n3.vote) == (3, 2)


def _disruptive_setup(pre_vote: bool) -> Network:
    net = Network([1, 2, 3], check_quorum=True, pre_vote=pre_vote)
    net.elect(1)
    net.isolate(3)
    for _ in range(40):  # n3 hears nothing and times out, maybe repeatedly
        net.nodes[3].rn.tick()
        net.deliver()
    net.recover()
    return net


def test_disruptive_rejoining_follower_without_prevote() -> None:
    net = _disruptive_setup(pre_vote=False)
    n3 = net.nodes[3]
    assert n3.state == CANDIDATE and n3.term > 2
    # The leader's next heartbeat reaches n3, whose stale-term reply deposes the leader.
    net.tick(1)
    net.deliver()
    assert net.nodes[1].term >= n3.term
    assert net.nodes[1].term > 2  # the healthy leader was disrupted


def test_disruptive_rejoining_follower_with_prevote() -> None:
    net = _disruptive_setup(pre_vote=True)
    n3 = net.nodes[3]
    assert n3.state == PRE_CANDIDATE and n3.term == 2
    net.tick(1)
    net.deliver()
    assert net.leaders() == [1] and net.nodes[1].term == 2
    assert n3.state == FOLLOWER and n3.raft.lead == 1


# ---------------------------------------------------------------- non-members and learners
@pytest.mark.parametrize("setup", ["non-member", "learner", "removed"])
def test_non_voter_receiving_timeout_now_stays_follower(setup: str) -> None:
    if setup == "learner":
        r = new_raft(3, [1, 2], learners=[3], entries=log_of(1), term=1)
    elif setup == "non-member":
        r = new_raft(4, [1, 2, 3], entries=log_of(1), term=1)
    else:
        r = new_raft(3, [1, 2, 3], entries=log_of(1), term=1)
        r.apply_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    r.step(Message(MT.TIMEOUT_NOW, from_=1, to=r.id, term=1))
    assert (r.state, r.term) == (FOLLOWER, 1)
    assert read_messages(r) == []


@pytest.mark.parametrize("setup", ["non-member", "learner"])
def test_non_voter_never_campaigns(setup: str) -> None:
    if setup == "learner":
        r = new_raft(3, [1, 2], learners=[3], entries=log_of(1), term=1)
    else:
        r = new_raft(4, [1, 2, 3], entries=log_of(1), term=1)
    for _ in range(100):
        r.tick()
    r.step(Message(MT.HUP))
    assert (r.state, r.term) == (FOLLOWER, 1) and read_messages(r) == []


def test_no_campaign_while_committed_conf_change_is_unapplied() -> None:
    cc = Entry(1, 2, EntryType.CONF_CHANGE,
               codec.encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4)))
    r = new_raft(1, [1, 2, 3], entries=[Entry(1, 1), cc], term=1, commit=2, applied=1)
    r.step(Message(MT.HUP))
    assert r.state == FOLLOWER and read_messages(r) == []
    r.raft_log.applied_to(2)
    r.step(Message(MT.HUP))
    assert r.state == CANDIDATE


def test_fixtures_refuse_term_zero_logs() -> None:
    with pytest.raises(ValueError, match="terms start at 1"):
        new_raft(1, [1, 2], entries=[Entry(0, 1)])
