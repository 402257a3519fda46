"""Single-step membership changes: add/remove voters, learners and their promotion, one
pending change at a time, and the removed leader (with and without step-down)."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.raft import (
    ConfChange,
    ConfChangeType,
    EntryType,
    Message,
    MessageType,
    StateType,
    codec,
    rand,
)
from tests.support.raft_network import Network, log_of, new_raft, read_messages

MT = MessageType
ADD, REMOVE, LEARNER = (
    ConfChangeType.ADD_NODE, ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER_NODE
)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    rand.seed(3)


def test_add_voter_joins_with_empty_log_and_counts_in_quorum() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"before")
    net.add_node(4)  # a joining node: empty storage, no configuration yet
    net.propose_conf_change(1, ConfChange(ADD, 4))
    net.tick_all(2)
    n4 = net.nodes[4]
    assert n4.conf_state.voters == (1, 2, 3, 4)
    assert n4.log_entries() == net.nodes[1].log_entries()
    # With 4 voters the quorum is 3: two down nodes stop commits.
    net.crash(2)
    net.crash(3)
    commit = net.nodes[1].commit
    net.nodes[1].rn.propose(b"stuck")
    net.deliver()
    assert net.nodes[1].commit == commit


def test_remove_voter_shrinks_quorum_and_removed_node_never_campaigns() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose_conf_change(1, ConfChange(REMOVE, 3))
    assert net.nodes[1].conf_state.voters == (1, 2)
    net.crash(2)
    net.crash(3)
    net.restart(3)  # even after restarting, it is not a member
    net.tick_all(1)
    net.crash(1)
    n3 = net.nodes[3]
    for _ in range(60):
        n3.rn.tick()
    net.deliver()
    assert n3.state == StateType.FOLLOWER


def test_remove_leader_with_step_down_on_removal() -> None:
    net = Network([1, 2, 3], step_down_on_removal=True)
    net.elect(1)
    net.propose_conf_change(1, ConfChange(REMOVE, 1))
    assert net.nodes[1].state == StateType.FOLLOWER
    net.tick_all(30)
    assert net.leader() in (2, 3)


def test_removed_leader_without_step_down_keeps_leading_remaining_voters() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose_conf_change(1, ConfChange(REMOVE, 1))
    n1 = net.nodes[1]
    assert n1.state == StateType.LEADER and n1.conf_state.voters == (2, 3)
    from nodes.raft import ProposalDropped

    with pytest.raises(ProposalDropped, match="removed"):
        n1.rn.propose(b"x")


def test_learner_replicates_but_does_not_vote_until_promoted() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.add_node(4)
    net.propose_conf_change(1, ConfChange(LEARNER, 4))
    net.tick_all(2)
    n4 = net.nodes[4]
    assert n4.conf_state.learners == (4,) and n4.raft.is_learner
    net.propose(1, b"to-learner")
    assert n4.log_entries()[-1].data == b"to-learner"
    votes = [m for m in net.trace if m.type == MT.VOTE and m.to == 4]
    assert votes == []
    # Learners do not count: with 2 voters down nothing commits.
    net.crash(2)
    net.crash(3)
    c = net.nodes[1].commit
    net.nodes[1].rn.propose(b"stuck")
    net.deliver()
    assert net.nodes[1].commit == c
    net.restart(2)
    net.restart(3)
    net.tick_all(3)
    net.propose_conf_change(1, ConfChange(ADD, 4))  # promote
    net.tick_all(2)
    assert n4.conf_state.voters == (1, 2, 3, 4) and not n4.raft.is_learner
    net.crash(1)
    net.elect(4)


def test_voter_cannot_be_demoted_by_add_learner() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1)
    cs = r.apply_conf_change(ConfChange(LEARNER, 2))
    assert cs.voters == (1, 2, 3) and cs.learners == ()


def test_only_one_pending_conf_change() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1, commit=1)
    r.become_candidate()
    r.become_leader()
    r.raft_log.commit_to(2)
    r.raft_log.applied_to(2)
    cc = codec.encode_conf_change(ConfChange(ADD, 4))
    from nodes.raft import Entry

    for _ in range(2):
        r.step(Message(MT.PROP, from_=1, entries=(Entry(0, 0, EntryType.CONF_CHANGE, cc),)))
    ents = r.raft_log.entries(3)
    assert [e.type for e in ents] == [EntryType.CONF_CHANGE, EntryType.NORMAL]
    assert ents[1].data == b""
    assert r.pending_conf_index == 3


def test_new_leader_refuses_conf_change_until_it_applied_its_log() -> None:
    r = new_raft(1, [1, 2, 3], entries=log_of(1, 1), term=1, commit=1)
    r.become_candidate()
    r.become_leader()
    assert r.pending_conf_index == 2  # anything in the log might be a conf change
    from nodes.raft import Entry

    cc = codec.encode_conf_change(ConfChange(REMOVE, 3))
    r.step(Message(MT.PROP, from_=1, entries=(Entry(0, 0, EntryType.CONF_CHANGE, cc),)))
    assert r.raft_log.entries(4)[0].type == EntryType.NORMAL
    read_messages(r)


def test_replayed_bootstrap_conf_changes_are_idempotent() -> None:
    net = Network([1, 2, 3])
    n = net.nodes[2]
    for v in (1, 2, 3):
        cs = n.rn.apply_conf_change(ConfChange(ADD, v))
    assert cs.voters == (1, 2, 3)


def _leader_with_applied_log() -> Any:
    r = new_raft(1, [1, 2, 3], entries=log_of(1), term=1, commit=1)
    r.become_candidate()
    r.become_leader()
    r.raft_log.commit_to(2)
    r.raft_log.applied_to(2)
    return r


@pytest.mark.parametrize(
    "data",
    [
        b"",  # no type byte
        b"\x00" + b"\xff" * 9 + b"\x7f" + b"\x00",  # node id beyond 64 bits
        b"\x09\x02\x00",  # unknown conf change type
        b"\x00\x02\x00trailing",
    ],
)
def test_undecodable_conf_change_proposal_becomes_an_empty_entry(data: bytes) -> None:
    # a forwarded MsgProp carries arbitrary bytes: appending them would make every replica
    # fail to apply the entry (issue 20, item 1); the leader refuses it as it refuses a
    # second pending change, by proposing an empty entry instead
    from nodes.raft import Entry

    r = _leader_with_applied_log()
    r.step(Message(MT.PROP, from_=2, entries=(Entry(0, 0, EntryType.CONF_CHANGE, data),)))
    ents = r.raft_log.entries(3)
    assert [(e.type, e.data) for e in ents] == [(EntryType.NORMAL, b"")]
    assert r.pending_conf_index <= r.raft_log.applied


def test_removing_the_last_voter_is_refused() -> None:
    # etcd's confchange refuses "removed all voters": a cluster without voters can never
    # elect a leader or commit again
    from nodes.raft import Entry

    r = new_raft(1, [1], entries=log_of(1), term=1, commit=1)
    r.become_candidate()
    r.become_leader()
    r.raft_log.commit_to(2)
    r.raft_log.applied_to(2)
    cc = codec.encode_conf_change(ConfChange(REMOVE, 1))
    r.step(Message(MT.PROP, from_=1, entries=(Entry(0, 0, EntryType.CONF_CHANGE, cc),)))
    assert r.raft_log.entries(3)[0].type == EntryType.NORMAL
    # removing a voter that leaves another is fine
    cc = codec.encode_conf_change(ConfChange(ADD, 2))
    r.step(Message(MT.PROP, from_=1, entries=(Entry(0, 0, EntryType.CONF_CHANGE, cc),)))
    assert r.raft_log.entries(4)[0].type == EntryType.CONF_CHANGE
