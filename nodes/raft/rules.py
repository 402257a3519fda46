"""The one seam for seeded bugs: each point where a `--bug` switch makes the core deviate
from correct Raft is a named hook of `Rules`.

`Rules` is correct Raft; it is what every node without seeded bugs uses. `SeededBugs`
overrides the hooks whose bug is switched on in `Config.bugs` and defers to correct Raft for
the others. The core only calls hooks and never tests a bug name, so it reads as correct Raft;
this module is the one place that knows what each seeded bug does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .log import RaftLog
from .types import CampaignType

BUG_TIMEOUT_NOW_NON_MEMBER = "timeout-now-non-member"  # a non-member/learner obeys TimeoutNow
BUG_NO_UP_TO_DATE_CHECK = "no-up-to-date-check"  # votes granted without the log check
BUG_COMMIT_OLD_TERM = "commit-old-term"  # leader commits old-term entries by counting
BUG_LEASE_WITHOUT_CHECK_QUORUM = "lease-without-check-quorum"  # lease reads allowed w/o CQ
KNOWN_BUGS = frozenset(
    {
        BUG_TIMEOUT_NOW_NON_MEMBER,
        BUG_NO_UP_TO_DATE_CHECK,
        BUG_COMMIT_OLD_TERM,
        BUG_LEASE_WITHOUT_CHECK_QUORUM,
    }
)


class Campaigner(Protocol):
    """What the TimeoutNow hook may do to the node: campaign with or without the checks."""

    def hup(self, t: CampaignType) -> None: ...

    def campaign(self, t: CampaignType) -> None: ...


class Rules:
    """Correct Raft at every point a seeded bug can change."""

    __slots__ = ()

    def vote_log_ok(self, log: RaftLog, index: int, log_term: int) -> bool:
        """Is the candidate's log, ending at (index, log_term), good enough for our vote?
        Only if it is at least as up to date as ours (election restriction, §5.4.1)."""
        return log.is_up_to_date(index, log_term)

    def may_commit(self, log: RaftLog, index: int, term: int) -> bool:
        """May a leader of `term` commit `index` because a quorum holds it? Only an entry of
        its own term; older ones commit indirectly with it (§5.4.2, Figure 8)."""
        return log.zero_term_on_compacted(index) == term

    def timeout_now(self, r: Campaigner) -> None:
        """A TimeoutNow arrived: campaign at once, without PreVote. `hup` refuses if we may
        not campaign (not a voter, removed, unapplied conf change)."""
        r.hup(CampaignType.TRANSFER)

    def lease_holds(self, quorum_acked_recently: bool, check_quorum: bool) -> bool:
        """May a leader serve a read from its lease? Only while a quorum acknowledged it
        recently (leader.lease_valid computes that)."""
        return quorum_acked_recently

    def lease_reads_need_check_quorum(self) -> bool:
        """Lease reads are sound only if followers honour leases, which CheckQuorum does."""
        return True


class SeededBugs(Rules):
    """Correct Raft except where one of `bugs` (names from KNOWN_BUGS) says otherwise."""

    __slots__ = ("bugs",)

    def __init__(self, bugs: Iterable[str]) -> None:
        self.bugs = frozenset(bugs)

    def vote_log_ok(self, log: RaftLog, index: int, log_term: int) -> bool:
        if BUG_NO_UP_TO_DATE_CHECK in self.bugs:
            return True  # any log will do: a leader can lack committed entries
        return super().vote_log_ok(log, index, log_term)

    def may_commit(self, log: RaftLog, index: int, term: int) -> bool:
        if BUG_COMMIT_OLD_TERM in self.bugs:
            return True  # count replicas of any term: Figure 8's lost commit
        return super().may_commit(log, index, term)

    def timeout_now(self, r: Campaigner) -> None:
        if BUG_TIMEOUT_NOW_NON_MEMBER in self.bugs:
            r.campaign(CampaignType.TRANSFER)  # no promotable check: a non-member campaigns
            return
        super().timeout_now(r)

    def lease_holds(self, quorum_acked_recently: bool, check_quorum: bool) -> bool:
        if BUG_LEASE_WITHOUT_CHECK_QUORUM in self.bugs and not check_quorum:
            # Trust the lease as etcd does, until a CheckQuorum round that never comes: a
            # leader cut off from the cluster keeps answering reads from its own state.
            return True
        return super().lease_holds(quorum_acked_recently, check_quorum)

    def lease_reads_need_check_quorum(self) -> bool:
        if BUG_LEASE_WITHOUT_CHECK_QUORUM in self.bugs:
            return False
        return super().lease_reads_need_check_quorum()


CORRECT_RAFT = Rules()


def rules_for(bugs: Iterable[str]) -> Rules:
    """The rules a node with these seeded bugs follows (correct Raft if there are none)."""
    names = frozenset(bugs)
    return SeededBugs(names) if names else CORRECT_RAFT
