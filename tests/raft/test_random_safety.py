"""Randomized clusters (hypothesis): 3 and 5 nodes under random delivery order and delays,
drops, partitions, crashes with restart from storage, compaction and leader transfers. After
every step: at most one leader per term, log matching, no divergent applied entries,
committed entries never lost (and present in every later leader), monotonic terms/commits."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodes.raft import (
    ConfChange,
    ConfChangeType,
    Entry,
    ProposalDropped,
    ReadOnlyOption,
    StateType,
    rand,
)
from tests.support.raft_network import Network

KINDS = ("tick", "tick", "tick", "deliver", "deliver", "deliver", "deliver", "drop",
         "partition", "heal", "heal", "restart", "propose", "propose", "propose", "transfer",
         "compact", "read")
ops = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 1 << 16), st.integers(0, 1 << 16)),
    min_size=30,
    max_size=150,
)


@dataclass
class Observed:
    leader_of_term: dict[int, int] = field(default_factory=dict)
    committed: dict[int, Entry] = field(default_factory=dict)
    commit_term: dict[int, int] = field(default_factory=dict)  # index -> term it was seen at
    applied: dict[int, Entry] = field(default_factory=dict)
    max_term: dict[int, int] = field(default_factory=dict)
    max_commit: dict[int, int] = field(default_factory=dict)
    read_floor: dict[bytes, int] = field(default_factory=dict)  # ctx -> commit at request


def check(net: Network, ob: Observed) -> None:
    logs: dict[int, dict[int, Entry]] = {}
    for i, n in net.nodes.items():
        if not n.up:
            continue
        r = n.raft
        # Monotonic term and commit (also across restarts: both are persisted).
        assert r.term >= ob.max_term.get(i, 0), f"term of {i} went back"
        assert n.commit >= ob.max_commit.get(i, 0), f"commit of {i} went back"
        ob.max_term[i], ob.max_commit[i] = r.term, n.commit
        if r.state == StateType.LEADER:
            prev = ob.leader_of_term.setdefault(r.term, i)
            assert prev == i, f"two leaders in term {r.term}: {prev} and {i}"
        log = {e.index: e for e in n.log_entries()}
        logs[i] = log
        # Committed entries never change, and every node's committed prefix agrees.
        for idx in range(r.raft_log.first_index(), n.commit + 1):
            e = log[idx]
            known = ob.committed.setdefault(idx, e)
            assert known == e, f"committed entry {idx} differs on {i}: {known} vs {e}"
            ob.commit_term[idx] = min(ob.commit_term.get(idx, r.term), r.term)
        # Linearizable reads: the read index covers every write committed before the read.
        for rs in n.read_states:
            floor = ob.read_floor[rs.request_ctx]
            assert rs.index >= floor, f"stale read on {i}: index {rs.index} < commit {floor}"
        n.read_states.clear()
        for idx, e in n.applied.items():
            known = ob.applied.setdefault(idx, e)
            assert known == e, f"node {i} applied {e} at {idx}, another applied {known}"
    # Leader completeness: a leader of term t holds every entry committed before t.
    for i, log in logs.items():
        r = net.nodes[i].raft
        if r.state != StateType.LEADER:
            continue
        first = r.raft_log.first_index()
        for idx, e in ob.committed.items():
            if idx >= first and ob.commit_term[idx] < r.term:
                assert log.get(idx) == e, f"leader {i} (term {r.term}) lost committed {idx}"
    # Log matching: same index and term => identical prefixes (where both still hold them).
    ids = sorted(logs)
    for a_pos, a in enumerate(ids):
        for b in ids[a_pos + 1 :]:
            la, lb = logs[a], logs[b]
            common = [x for x in la if x in lb and la[x].term == lb[x].term]
            if not common:
                continue
            top = max(common)
            for x in range(top, 0, -1):
                if x not in la or x not in lb:
                    break
                assert la[x] == lb[x], f"logs of {a} and {b} differ at {x} below {top}"


def change_membership(net: Network, node: int, flip: int) -> None:
    """Have the leader (if any) remove, add, add as learner, or promote `node`."""
    leader = net.leader()
    if not leader:
        return
    cs = net.nodes[leader].conf_state
    if node in cs.voters:
        if len(cs.voters) <= 2:
            return
        cc = ConfChange(ConfChangeType.REMOVE_NODE, node)
    elif node in cs.learners or flip % 2:
        cc = ConfChange(ConfChangeType.ADD_NODE, node)  # add, or promote a learner
    else:
        cc = ConfChange(ConfChangeType.ADD_LEARNER_NODE, node)
    try:
        net.nodes[leader].rn.propose_conf_change(cc)
    except ProposalDropped:
        pass


def shut_down_removed_nodes(net: Network) -> None:
    """Stop nodes outside the newest applied configuration (and start re-added ones), as an
    operator would: a removed node that never learnt of its removal keeps campaigning and,
    without PreVote/CheckQuorum, deposes every leader of the remaining members."""
    newest = max(net.nodes.values(), key=lambda n: (n.up, n.applied_index))
    members = {*newest.conf_state.voters, *newest.conf_state.learners}
    for i, n in net.nodes.items():
        if n.up and i not in members:
            net.crash(i)
        elif not n.up and i in members:
            net.restart(i)


def run(size: int, seed: int, steps: list[tuple[str, int, int]], pre_vote: bool,
        check_quorum: bool, bugs: frozenset[str] = frozenset(), spare: bool = False,
        lease: bool = False) -> Network:
    rand.seed(seed)
    read_mode = ReadOnlyOption.LEASE_BASED if lease and check_quorum else ReadOnlyOption.SAFE
    cfg: dict[str, Any] = {"pre_vote": pre_vote, "check_quorum": check_quorum, "election_tick": 5,
           "read_only_option": read_mode,
           "max_size_per_msg": 64, "max_inflight_msgs": 4, "bugs": bugs,
           "step_down_on_removal": spare}
    net = Network(range(1, size + 1), seed=seed, **cfg)
    if spare:  # a node outside the cluster that membership changes may add
        net.add_node(size + 1, **cfg)
    ob = Observed()
    ids = list(net.nodes)
    writes = 0
    for kind, a, b in steps:
        node = ids[a % len(ids)]
        other = ids[b % len(ids)]
        if kind == "tick":
            for _ in range(1 + b % 3):
                for n in net.nodes.values():
                    if n.up:
                        n.rn.tick()
        elif kind in ("deliver", "drop") and net.in_flight:
            # Deliver (or lose) a random prefix of messages in a random order: delays.
            k = 1 + b % min(len(net.in_flight), 16)
            for _ in range(k):
                m = net.in_flight.pop(a % len(net.in_flight))
                if kind == "deliver":
                    net.deliver_one(m)
                else:
                    net.lose(m)
                a = a * 31 + 7
        elif kind == "dup" and net.in_flight:
            # A retransmission: the same message delivered twice (later, out of order).
            m = net.in_flight[a % len(net.in_flight)]
            net.in_flight.append(dataclasses.replace(m))
        elif kind == "partition":
            net.recover()
            side = {i for i in ids if (a >> i) & 1}
            net.partition(side, set(ids) - side)
        elif kind == "heal":
            net.recover()
        elif kind == "restart":
            net.crash(node)
            net.restart(node)
        elif kind == "propose":
            writes += 1
            target = net.leaders()[0] if b % 3 and net.leaders() else node
            try:
                net.nodes[target].rn.propose(b"w%d" % writes)
            except ProposalDropped:
                pass
        elif kind == "transfer":
            net.nodes[node].rn.transfer_leader(other)
        elif kind == "compact":
            n = net.nodes[node]
            # Snapshot at the applied index, whose configuration the node knows.
            if n.up and n.applied_index > n.storage.snapshot().metadata.index:
                net.compact(node, n.applied_index)
        elif kind == "read":
            ctx = b"r%d" % len(ob.read_floor)
            ob.read_floor[ctx] = max(n.commit for n in net.nodes.values())
            net.nodes[node].rn.read_index(ctx)
        elif kind == "member":
            change_membership(net, node, b)
        net.flush()
        check(net, ob)
    # Finally heal and let the cluster settle: it must elect a leader and converge.
    net.recover()
    # Bounded: split votes in lockstep are possible each round, so allow many rounds.
    for t in range(400):
        if t % 10 == 0:
            shut_down_removed_nodes(net)
        net.tick_all(1)
        check(net, ob)
        if t >= 30 and net.leader() and t % 10 == 9:
            break
    leader = net.leader()
    assert leader, "no leader after healing"
    net.nodes[leader].rn.propose(b"final")
    net.deliver()
    net.tick_all(3)
    check(net, ob)
    cs = net.nodes[leader].conf_state
    commits = {net.nodes[i].commit for i in (*cs.voters, *cs.learners)}
    assert len(commits) == 1, f"commit indexes did not converge: {commits}"
    return net


@pytest.mark.parametrize("size", [3, 5])
@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2**31), steps=ops, pre_vote=st.booleans(),
       check_quorum=st.booleans(), lease=st.booleans())
def test_random_cluster_safety(size: int, seed: int, steps: list[tuple[str, int, int]],
                               pre_vote: bool, check_quorum: bool, lease: bool) -> None:
    run(size, seed, steps, pre_vote, check_quorum, lease=lease)


member_ops = st.lists(
    st.tuples(st.sampled_from((*KINDS, "member", "member", "dup")), st.integers(0, 1 << 16),
              st.integers(0, 1 << 16)),
    min_size=30,
    max_size=150,
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(size=st.sampled_from([3, 5]), seed=st.integers(0, 2**31), steps=member_ops,
       pre_vote=st.booleans(), check_quorum=st.booleans(), lease=st.booleans())
def test_random_cluster_safety_with_membership_changes(
    size: int, seed: int, steps: list[tuple[str, int, int]], pre_vote: bool,
    check_quorum: bool, lease: bool,
) -> None:
    run(size, seed, steps, pre_vote, check_quorum, spare=True, lease=lease)


def _steps_for(example: int) -> tuple[int, list[tuple[str, int, int]], bool, bool]:
    r = random.Random(example)
    steps = [(r.choice(KINDS), r.randrange(1 << 16), r.randrange(1 << 16))
             for _ in range(r.randrange(30, 200))]
    return r.choice([3, 5]), steps, r.random() < 0.5, r.random() < 0.5


@pytest.mark.parametrize("example", [9, 27])
def test_invariant_checks_catch_the_no_up_to_date_check_bug(example: int) -> None:
    size, steps, pre_vote, check_quorum = _steps_for(example)
    run(size, example, steps, pre_vote, check_quorum)  # correct core: safe
    with pytest.raises(AssertionError, match="committed"):
        run(size, example, steps, pre_vote, check_quorum,
            bugs=frozenset({"no-up-to-date-check"}))
