"""The report of a long run: the timeline draws a bounded sample (every operation an anomaly
names, every fault) and says so; node events are read without their inner applies and commits,
which changes nothing drawn."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from checkers.rundata import pair_ops, read_records
from reports import render, render_run
from reports.events import read_node_events
from reports.raft import marks_from_events, segments_from_events
from reports.timeline import sample_rows
from tests.support.runfactory import build_run


def _timeline(html: str) -> dict[str, Any]:
    found = re.search(r'id="timeline-data">(.*?)</script>', html, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_sample_rows_keeps_what_it_must_and_spreads_the_rest() -> None:
    assert sample_rows(50, [3], bound=50).rows.tolist() == list(range(50))
    s = sample_rows(1000, [999, 5, 5, 1234], bound=100)
    rows = s.rows.tolist()
    assert len(rows) == 100 and rows == sorted(set(rows)) and {5, 999} <= set(rows)
    gaps = [b - a for a, b in zip(rows, rows[1:], strict=False)]
    assert max(gaps) <= 12  # evenly spread, about one in ten
    assert s.sampled and "Showing 100 of 1,000 operations" in s.note()
    assert sample_rows(10, bound=10).note() == ""


def test_a_run_beyond_the_bound_draws_a_sample_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "MAX_TIMELINE_OPS", 150)
    run = build_run(tmp_path, n_ops=400, seed=4, stale_read=True, two_leaders=True)
    html = render_run(run.run_dir).read_text()
    data = _timeline(html)
    n = sum(1 for h in run.history if h["type"] == "invoke" and h["process"] != "nemesis")  # 400 and the stale read
    assert len(data["s"]) == len(data["d"]) == 150 and data["total"] == n
    note = re.search(r'<p class="notice" id="timeline-sampled">([^<]*)</p>', html)
    assert note is not None and note.group(1).startswith(
        f"Showing 150 of {n} operations: every operation of the counterexample and those in flight at each anomaly")
    drawn = set(zip(data["s"], (d.split(" ")[0] for d in data["d"]), strict=True))
    cx = run.results["checkers"]["linearizability"]["counterexample"]
    assert cx["ops"] and all((op["invoke"] // 1000, f"p{op['process']}") in drawn for op in cx["ops"])
    assert [f["name"] for f in data["faults"]] == ["partition", "kill"] and len(data["rows"]) == 5  # every lane
    assert f"{n} client ops" in html  # counts cover every operation


def _random_events(rng: random.Random) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    ts, boot, index = 100.0, 1, 0
    for _ in range(rng.randrange(0, 200)):
        ts += rng.choice((0.0, 0.01, 0.5, -0.2))  # a clock may step back
        roll = rng.random()
        if roll < 0.05:
            boot += 1
            ev: dict[str, Any] = {"type": "boot", "term": rng.randrange(5)}
        elif roll < 0.12:
            ev = {"type": "role", "role": rng.choice(("follower", "candidate", "leader")), "term": rng.randrange(5)}
        elif roll < 0.15:
            ev = {"type": "conf", "index": index, "voters": ["n1", "n2"], "learners": []}
        elif roll < 0.18:
            ev = {"type": "vote", "term": 2, "for": "n2"}
        else:
            index += 1
            ev = {"type": rng.choice(("apply", "apply", "commit")), "index": index, "term": 2}
        ev = {"ts": round(ts, 3), "node": "n1", "boot": boot if rng.random() < 0.97 else boot - 1, **ev}
        if rng.random() < 0.02:
            ev["ts"] = None
        events.append(ev)
    return events


@pytest.mark.parametrize("seed", range(30))
def test_node_events_without_inner_applies_draw_the_same(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _random_events(random.Random(seed))))
    problems: list[str] = []
    full = {"n1": read_records(path, tolerant=True)}
    kept = {"n1": read_node_events(path, problems)}
    assert problems == []
    assert len(kept["n1"]) <= len(full["n1"])
    assert segments_from_events(kept) == segments_from_events(full)
    assert marks_from_events(kept) == marks_from_events(full)
    others = [{k: v for k, v in e.items() if k != "_line"} for e in full["n1"] if e["type"] not in ("apply", "commit")]
    assert [e for e in kept["n1"] if e["type"] not in ("apply", "commit")] == others  # every other event, in order


def test_a_long_stretch_of_applies_keeps_its_ends_only(tmp_path: Path) -> None:
    events = [{"ts": 1.0, "node": "n1", "boot": 1, "type": "boot", "term": 1}]
    events += [{"ts": 1.0 + i / 1000, "node": "n1", "boot": 1, "type": "apply", "index": i, "term": 1}
               for i in range(1, 1001)]
    events.append({"ts": 3.0, "node": "n1", "boot": 1, "type": "role", "role": "leader", "term": 2})
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"ts": 4.0, "no')
    problems: list[str] = []
    kept = read_node_events(path, problems)
    assert [e.get("index") for e in kept] == [None, 1, 1000, None]
    assert problems == ["events.jsonl: torn last line 1003 skipped (the run was killed mid-write?)"]


def test_a_lost_write_is_drawn_in_a_sampled_timeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "MAX_TIMELINE_OPS", 150)
    run = build_run(tmp_path, n_ops=400, seed=5, linear=False)
    ops = pair_ops(run.history)
    spread = set(sample_rows(len(ops), bound=150).rows.tolist())
    row, op = next((i, o) for i, o in enumerate(ops) if o.f == "write" and o.type == "ok" and i not in spread)
    lost = {"valid": False, "message": "1 acknowledged write(s) lost",
            "lost": [{"key": op.key, "node": "n2", "read": None, "last_acked": op.value, "lost": [op.value],
                      "lost_ops": [{"f": "write", "value": op.value, "invoke": op.invoke, "acked": op.complete}]}]}
    (run.run_dir / "results.json").write_text(json.dumps({"valid": False, "checkers": {"lost-writes": lost}}))
    html = render_run(run.run_dir).read_text()
    data = _timeline(html)
    drawn = set(zip(data["s"], (d.split(" ")[0] for d in data["d"]), strict=True))
    assert len(data["s"]) == 150 and (op.invoke // 1000, f"p{op.process}") in drawn, f"op {row} not drawn"
    assert "those in flight at each anomaly" in html and 'id="lost-writes"' in html


def test_a_node_with_a_clock_record_keeps_every_event(tmp_path: Path) -> None:
    node = tmp_path / "n1"
    node.mkdir()
    path = node / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _random_events(random.Random(3))))
    problems: list[str] = []
    assert len(read_node_events(path, problems)) < len(read_records(path))
    (node / "clock.applied").write_text("")  # its stamps are mapped in the order written: none left out
    assert read_node_events(path, problems) == read_records(path) and problems == []


def test_a_torn_event_line_with_nothing_before_it_is_the_record_readers(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"ts": 1.0, "no')
    problems: list[str] = []
    assert read_node_events(path, problems) == []
    assert problems == ["events.jsonl: 1 malformed line(s) skipped, first at line 1"]
