"""The seeded-bug seam (nodes/raft/rules.py): no bugs means correct Raft, and each bug name
changes exactly the decisions it documents, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.raft import KNOWN_BUGS
from nodes.raft.log import RaftLog
from nodes.raft.rules import CORRECT_RAFT, Rules, rules_for
from nodes.raft.types import CampaignType
from tests.support.raft_network import fixture_storage, log_of


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, CampaignType]] = []

    def hup(self, t: CampaignType) -> None:
        self.calls.append(("hup", t))

    def campaign(self, t: CampaignType) -> None:
        self.calls.append(("campaign", t))


def decisions(rules: Rules) -> dict[str, Any]:
    """Each hook's answer to inputs on which correct Raft says no."""
    log = RaftLog(fixture_storage([1, 2, 3], entries=log_of(1, 2), term=3))
    rec = Recorder()
    rules.timeout_now(rec)
    return {
        "vote_log_ok": rules.vote_log_ok(log, 1, 1),  # a shorter log of an older term
        "may_commit": rules.may_commit(log, 2, 3),  # an entry of term 2 by a leader of 3
        "timeout_now": rec.calls,
        "lease_holds": (rules.lease_holds(False, False), rules.lease_holds(False, True)),
        "lease_reads_need_check_quorum": rules.lease_reads_need_check_quorum(),
    }


CORRECT = {
    "vote_log_ok": False,
    "may_commit": False,
    "timeout_now": [("hup", CampaignType.TRANSFER)],
    "lease_holds": (False, False),
    "lease_reads_need_check_quorum": True,
}
CHANGES = {
    "no-up-to-date-check": {"vote_log_ok"},
    "commit-old-term": {"may_commit"},
    "timeout-now-non-member": {"timeout_now"},
    "lease-without-check-quorum": {"lease_holds", "lease_reads_need_check_quorum"},
}


def test_no_bugs_is_correct_raft() -> None:
    assert rules_for(frozenset()) is CORRECT_RAFT
    assert decisions(CORRECT_RAFT) == CORRECT


def test_every_known_bug_is_described_here() -> None:
    assert set(CHANGES) == set(KNOWN_BUGS)


@pytest.mark.parametrize("bug", sorted(KNOWN_BUGS))
def test_each_bug_changes_only_its_own_decisions(bug: str) -> None:
    got = decisions(rules_for({bug}))
    assert {k for k in CORRECT if got[k] != CORRECT[k]} == CHANGES[bug]


def test_bugs_combine() -> None:
    got = decisions(rules_for(KNOWN_BUGS))
    assert all(got[k] != CORRECT[k] for k in CORRECT)
