"""Each seeded bug (Config.bugs) really changes behaviour: the anomaly it enables shows up in
the in-memory network, and the same scenario without the bug stays safe."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.raft import (
    ConfChange,
    ConfChangeType,
    ConfigInvalid,
    Entry,
    InvariantViolated,
    Message,
    MessageType,
    ReadOnlyOption,
    StateType,
    rand,
)
from tests.support.raft_network import Network, fixture_storage, network_from_storages

MT = MessageType


@pytest.fixture(autouse=True)
def _seeded() -> None:
    rand.seed(13)


@pytest.mark.parametrize("bug", [False, True])
def test_timeout_now_non_member(bug: bool) -> None:
    bugs = frozenset({"timeout-now-non-member"}) if bug else frozenset()
    net = Network([1, 2, 3], check_quorum=True, pre_vote=True, bugs=bugs)
    net.elect(1)
    net.propose_conf_change(1, ConfChange(ConfChangeType.REMOVE_NODE, 3))
    assert net.nodes[3].conf_state.voters == (1, 2)
    # A stale TimeoutNow (say, from a transfer started before the removal) reaches node 3.
    net.send(Message(MT.TIMEOUT_NOW, from_=1, to=3, term=net.nodes[1].term))
    if bug:
        # The removed node campaigned, bypassing leases, and now leads a cluster it is not in.
        assert net.leaders() == [3]
        assert 3 not in net.nodes[3].conf_state.voters
    else:
        assert net.leaders() == [1] and net.nodes[3].state == StateType.FOLLOWER


@pytest.mark.parametrize("bug", [False, True])
def test_no_up_to_date_check(bug: bool) -> None:
    bugs = frozenset({"no-up-to-date-check"}) if bug else frozenset()
    net = Network([1, 2, 3], bugs=bugs)
    net.elect(1)
    net.isolate(3)
    for k in range(3):
        net.propose(1, b"c%d" % k)
    committed = net.nodes[2].commit
    net.crash(1)
    net.recover()
    net.ignore(MT.APP)  # look at the election result before any replication
    net.campaign(3)
    n3 = net.nodes[3]
    if bug:
        # Leader completeness is violated: the leader lacks entries committed earlier.
        assert n3.state == StateType.LEADER
        assert n3.raft.raft_log.last_index() <= committed
        assert all(e.data != b"c2" for e in n3.log_entries())
        # Let it lead: n3 and n2 end up with different committed entries at one index (or
        # n2 stops on a conflict below its commit index, as etcd panics).
        net.recover()
        try:
            net.tick_all(3)
        except InvariantViolated:
            return
        n2 = net.nodes[2]
        diverged = [i for i in range(1, min(n2.commit, n3.commit) + 1)
                    if n2.applied.get(i) != n3.applied.get(i)]
        assert diverged, "expected divergent committed entries"
    else:
        assert n3.state != StateType.LEADER


def _figure_8(bugs: frozenset[str]) -> Network:
    """Raft paper Figure 8 with realistic terms, states (a)-(b) loaded from storage."""
    voters = [1, 2, 3, 4, 5]
    old, s5 = Entry(2, 2, data=b"old"), Entry(3, 2, data=b"s5")
    storages = {
        1: fixture_storage(voters, entries=[Entry(1, 1), old], term=3, commit=1),
        2: fixture_storage(voters, entries=[Entry(1, 1)], term=3, vote=5, commit=1),
        3: fixture_storage(voters, entries=[Entry(1, 1)], term=3, vote=5, commit=1),
        4: fixture_storage(voters, entries=[Entry(1, 1)], term=3, vote=5, commit=1),
        5: fixture_storage(voters, entries=[Entry(1, 1), s5], term=3, vote=5, commit=1),
    }
    return network_from_storages(storages, bugs=bugs, max_size_per_msg=0)


@pytest.mark.parametrize("bug", [False, True])
def test_commit_old_term(bug: bool) -> None:
    net = _figure_8(frozenset({"commit-old-term"}) if bug else frozenset())
    net.crash(4)
    net.crash(5)
    # (c) S1 leads term 4 and copies its term-2 entry to S2 and S3, but its own term-4
    # entry (index 3) never arrives (the first, rejected probe does).
    def loses_index_3(m: Message) -> bool:
        has_2 = net.nodes[m.to].raft.raft_log.last_index() >= 2
        return m.type == MT.APP and has_2 and any(e.index == 3 for e in m.entries)

    net.drop_if = loses_index_3
    net.elect(1)
    s1 = net.nodes[1]
    assert s1.term == 4 and s1.raft.tracker.progress[3].match == 2
    if bug:
        assert s1.commit == 2 and s1.applied[2].data == b"old"
    else:
        assert s1.commit == 1 and 2 not in s1.applied
    # (d) S1 crashes; S5 (last term 3) wins with S2, S3, S4 and overwrites index 2.
    net.crash(1)
    net.recover()
    net.restart(4)
    net.restart(5)
    for _ in range(3):
        net.campaign(5)
        if net.nodes[5].state == StateType.LEADER:
            break
    net.deliver()
    assert net.nodes[5].state == StateType.LEADER
    assert net.nodes[2].applied[2].data == b"s5"
    if bug:
        # State machine safety: two nodes applied different entries at index 2.
        assert s1.applied[2] != net.nodes[2].applied[2]
    else:
        assert 2 not in s1.applied


@pytest.mark.parametrize("bug", [False, True])
def test_lease_without_check_quorum(bug: bool) -> None:
    kw: dict[str, Any] = {"read_only_option": ReadOnlyOption.LEASE_BASED, "check_quorum": False}
    if not bug:
        with pytest.raises(ConfigInvalid, match="check_quorum"):
            Network([1, 2, 3], **kw)
        return
    net = Network([1, 2, 3], bugs=frozenset({"lease-without-check-quorum"}), **kw)
    net.elect(1)
    net.tick_all(1)  # an acknowledged heartbeat round: n1 holds a lease
    net.isolate(1)
    # Without CheckQuorum the followers do not honour the lease: n3 votes for n2 at once.
    net.elect(2)
    net.propose(2, b"new-write")
    net.nodes[1].rn.read_index(b"read")
    net.deliver()
    (rs,) = net.nodes[1].read_states
    # A stale read: served at an index before a write another leader has committed.
    assert net.nodes[1].state == StateType.LEADER
    assert rs.index < net.nodes[2].commit
