"""End to end: real raftkv processes, SIGKILL restarts, then the safety checker over their
events. A correct cluster passes; with --bug vote-not-durable the forgotten vote is found."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from checkers.safety import check, read_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nodes"))
from raftkv_cluster import Cluster, put_with_retry  # noqa: E402

pytestmark = pytest.mark.slow


def run_dir_of(c: Cluster, root: Path) -> Path:
    """Lay the members' events out as a run folder: nodes/<node>/events.jsonl."""
    run = root / "run"
    for name, m in c.members.items():
        src = m.data_dir / "events.jsonl"
        if src.exists():
            dst = run / "nodes" / name / "events.jsonl"
            dst.parent.mkdir(parents=True)
            dst.write_bytes(src.read_bytes())
    return run


def test_correct_cluster_with_restarts_passes(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "cluster", spare=0)
    try:
        c.start_all()
        lead = c.wait_leader()
        put_with_retry(c.client(lead), "k", 1)
        follower = next(n for n in c.initial if n != lead)
        c.kill(follower)
        put_with_retry(c.client(lead), "k", 2)
        c.start(follower)
        c.kill(lead)  # a new election among the other two
        survivors = [n for n in c.initial if n != lead]
        lead2 = c.wait_leader(survivors)
        put_with_retry(c.client(lead2), "k", 3)
        c.start(lead)
        lead3 = c.wait_leader()
        st = c.admin(lead3).status()
        for n in c.initial:
            c.wait_applied(n, st["commit"])
        for n in c.initial:
            assert c.stop(n) == 0  # SIGTERM flushes the event buffers
    finally:
        c.close()
    events = read_events(run_dir_of(c, tmp_path))
    result = check(events)
    assert result.valid is True, result.details["violations"]
    stats = result.details["stats"]
    assert stats["terms_with_leader"] >= 2 and stats["applies"] > 0
    assert sum(stats["boots"].values()) == 5


def test_vote_not_durable_is_caught(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "cluster", spare=0, extra=["--bug", "vote-not-durable"])
    try:
        c.start_all()
        lead = c.wait_leader()
        term = c.admin(lead).status()["term"]
        voter = next(
            n for n in c.initial
            if n != lead and any(e["type"] == "vote" and e["for"] == lead for e in c.events(n))
        )
        c.kill(voter)
        c.start(voter)
        boot = c.wait_event(voter, lambda e: e["type"] == "boot" and e["boot"] == 2)
        if boot["term"] != term:
            pytest.skip("an election happened meanwhile; the vote under test is superseded")
        for n in c.initial:
            c.stop(n)
    finally:
        c.close()
    result = check(read_events(run_dir_of(c, tmp_path)))
    assert result.valid is False
    found = [v for v in result.details["violations"] if v["kind"] == "durability"]
    assert found, result.details["violations"]
    assert found[0]["nodes"] == [voter] and found[0]["term"] == term
    assert "durably voted for " + lead in found[0]["message"]
