"""End to end: real raftkv processes, SIGKILL restarts, then the safety checker over their
events. A correct cluster passes; with --bug vote-not-durable the forgotten vote is found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from checkers.safety import check, check_run, read_events
from checkers.safety.templates import PADDING, find_template_lines, line_bounds
from tests.support.raftkv_cluster import Cluster, put_with_retry

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


def assert_column_path_agrees(run_dir: Path, result: Any) -> None:
    """raftkv's own apply and commit lines all match the templates, and check_run (the column
    path, in worker processes) gives check()'s result."""
    for path in sorted(run_dir.glob("nodes/*/events.jsonl")):
        raw = path.read_bytes()
        block = np.frombuffer(raw + bytes(PADDING), dtype=np.uint8)
        starts, ends = line_bounds(block, len(raw))
        applies, commits = find_template_lines(block, starts, ends)
        types = []
        for line in raw.splitlines():
            try:
                types.append(orjson.loads(line).get("type"))
            except orjson.JSONDecodeError:
                types.append(None)  # a torn line of a killed node
        assert len(applies.lines) == types.count("apply") > 0, path
        assert len(commits.lines) == types.count("commit"), path

    def comparable(r: Any) -> dict[str, Any]:
        doc: dict[str, Any] = r.to_json()
        doc["stats"].pop("check_seconds")
        return doc

    assert comparable(check_run(run_dir, workers=2)) == comparable(result)


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
    run_dir = run_dir_of(c, tmp_path)
    result = check(read_events(run_dir))
    assert result.valid is True, result.details["violations"]
    assert_column_path_agrees(run_dir, result)
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
    run_dir = run_dir_of(c, tmp_path)
    result = check(read_events(run_dir))
    assert result.valid is False
    assert_column_path_agrees(run_dir, result)
    found = [v for v in result.details["violations"] if v["kind"] == "durability"]
    assert found, result.details["violations"]
    assert found[0]["nodes"] == [voter] and found[0]["term"] == term
    assert "durably voted for " + lead in found[0]["message"]
