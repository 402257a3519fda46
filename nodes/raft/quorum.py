"""Majority quorum arithmetic over a single voter set (single-step membership changes)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import IntEnum


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """Largest index acknowledged by a majority of voters (0 without voters)."""
    n = len(voters)
    if n == 0:
        return 0
    acked = sorted((match.get(v, 0) for v in voters), reverse=True)
    return acked[n // 2]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON with a majority of yes, LOST once a majority is impossible, else PENDING."""
    n = len(voters)
    if n == 0:
        return VoteResult.WON  # an empty config wins trivially, as in etcd
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is True:
            granted += 1
        elif got is False:
            rejected += 1
    q = n // 2 + 1
    if granted >= q:
        return VoteResult.WON
    if n - rejected >= q:
        return VoteResult.PENDING
    return VoteResult.LOST
