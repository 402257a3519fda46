"""--bug switches: names are checked, core bugs reach the Raft core, node bugs change behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodes.bugs import ALL_BUGS, CORE_BUGS, Bugs, UnknownBug
from nodes.raft import KNOWN_BUGS
from tests.support.raftkv_cluster import Cluster


def test_core_bug_names_match_the_core() -> None:
    assert set(CORE_BUGS) == set(KNOWN_BUGS)


def test_unknown_bug_rejected() -> None:
    with pytest.raises(UnknownBug, match="unknown bug 'nope'"):
        Bugs.parse(["nope"])
    b = Bugs.parse(["stale-read", "commit-old-term"])
    assert b.stale_read and not b.vote_not_durable and b.core == {"commit-old-term"}
    assert all(ALL_BUGS.values())  # each documents its anomaly


@pytest.mark.slow
@pytest.mark.parametrize("bug", [None, "vote-not-durable"])
def test_vote_durability_across_restart(tmp_path: Path, bug: str | None) -> None:
    """A follower that voted for the leader remembers the vote after SIGKILL, unless the bug."""
    c = Cluster(tmp_path, spare=0, extra=["--bug", bug, "--bug", "commit-old-term"] if bug else [])
    try:
        c.start_all()
        lead = c.wait_leader()
        st = c.admin(lead).status()
        if bug:
            assert st["bugs"] == sorted([bug, "commit-old-term"])
        voter = next(
            n for n in c.initial
            if n != lead and any(e["type"] == "vote" and e["for"] == lead for e in c.events(n))
        )
        c.kill(voter)
        c.start(voter)
        boot = c.wait_event(voter, lambda e: e["type"] == "boot" and e["boot"] == 2)
        if boot["term"] == st["term"]:  # no newer election since: the vote must be recalled
            assert boot["vote"] == (None if bug else lead)
        else:
            pytest.skip("an election happened meanwhile; the vote under test is superseded")
    finally:
        c.close()
