"""The progress tracker: membership (voters, learners), per-peer Progress, and votes."""

from __future__ import annotations

from collections.abc import Iterator

from .progress import Progress
from .quorum import VoteResult, committed_index, vote_result
from .types import ConfState


class ProgressTracker:
    __slots__ = ("voters", "learners", "progress", "votes", "max_inflight")

    def __init__(self, max_inflight: int) -> None:
        # Sorted tuples, not sets: a few ids each, and 10,000s of idle groups per process.
        self.voters: tuple[int, ...] = ()
        self.learners: tuple[int, ...] = ()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight

    def conf_state(self) -> ConfState:
        return ConfState(self.voters, self.learners)

    def add_voter(self, node: int) -> None:
        self.learners = tuple(x for x in self.learners if x != node)
        if node not in self.voters:
            self.voters = tuple(sorted((*self.voters, node)))

    def add_learner(self, node: int) -> None:
        self.voters = tuple(x for x in self.voters if x != node)
        if node not in self.learners:
            self.learners = tuple(sorted((*self.learners, node)))

    def remove(self, node: int) -> None:
        self.voters = tuple(x for x in self.voters if x != node)
        self.learners = tuple(x for x in self.learners if x != node)

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def ids(self) -> list[int]:
        """All members (voters and learners), sorted for deterministic message order."""
        return sorted(self.progress)

    def items(self) -> Iterator[tuple[int, Progress]]:
        for pid in sorted(self.progress):
            yield pid, self.progress[pid]

    def committed(self) -> int:
        return committed_index(self.voters, {v: self.progress[v].match for v in self.voters})

    def quorum_active(self) -> bool:
        active = {v: self.progress[v].recent_active for v in self.voters}
        return vote_result(self.voters, active) == VoteResult.WON

    def reset_votes(self) -> None:
        if self.votes:
            self.votes = {}

    def record_vote(self, node: int, granted: bool) -> None:
        if node not in self.votes:
            self.votes[node] = granted

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        return granted, rejected, vote_result(self.voters, self.votes)
