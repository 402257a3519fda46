"""The report's clock panel and the Raft timeline under clock faults: the panel is drawn for a
run with clock faults and only then; a node's own clock readings are put back on true time
from its clock agent's record (also across a clock stepped back); term changes are marked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from checkers.result import CheckResult
from reports import raft, render_run
from reports.clocks import Anchor, ClockMap, clock_maps, series
from tests.support.runfactory import START_WALL, build_run

NONCE = "0123456789ab"


def anchors_text(anchors: list[tuple[float, float, float]]) -> str:
    return "".join(f"{NONCE} {i} {r:.6f} {c:.6f} {rate:.9g}\n" for i, (r, c, rate) in enumerate(anchors))


def test_readings_of_a_drifted_and_stepped_clock_map_back_to_true_time() -> None:
    # true until 110; rate 0.5 from 110; stepped back 3 s at 120; reset at 130
    cm = ClockMap([Anchor(100, 100, 1.0), Anchor(110, 110, 0.5), Anchor(120, 112, 0.5), Anchor(130, 130, 1.0)])
    true = [95.0, 105.0, 112.0, 119.0, 121.0, 125.0, 131.0]
    readings = [95.0, 105.0, 111.0, 114.5, 112.5, 114.5, 131.0]  # 114.5 is read twice (the step back)
    assert cm.true_times(readings) == pytest.approx(true)
    assert cm.true_time(114.5) == pytest.approx(119.0)  # alone: the earliest it fits


def add_clock_faults(run_dir: Path) -> list[dict[str, Any]]:
    """Clock ops in the run's history: n3 slowed to 0.5 from 2 s to 4 s, n1 strobed from 5 s
    to 6 s, then the heal."""
    lines = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    ops = [
        (2.0, "start-clock", {"kind": "rate", "nodes": ["n3"], "rate": 0.5, "clocks": {"n3": {"offset_s": 0.0, "rate": 0.5}}}),
        (4.0, "stop-clock", {"kind": "rate", "nodes": ["n3"], "rate": 1.0, "clocks": {"n3": {"offset_s": -1.0, "rate": 1.0}}}),
        (5.0, "start-clock", {"kind": "strobe", "nodes": ["n1"], "offset_s": 2.0, "period_s": 0.25,
                              "clocks": {"n1": {"offset_s": 0.0, "rate": 1.0}}}),
        (6.0, "stop-clock", {"kind": "strobe", "nodes": ["n1"], "flips": 4, "clocks": {"n1": {"offset_s": 0.0, "rate": 1.0}}}),
        (6.5, "heal", {"clocks_reset": ["n1", "n2", "n3"],
                       "clocks": {n: {"offset_s": 0.0, "rate": 1.0} for n in ("n1", "n2", "n3")}}),
    ]
    lines += [{"time": int(t * 1e9), "process": "nemesis", "type": "info", "f": f, "value": v} for t, f, v in ops]
    lines.sort(key=lambda x: x["time"])
    (run_dir / "history.jsonl").write_text("".join(json.dumps(dict(x, index=i)) + "\n" for i, x in enumerate(lines)))
    return lines


def test_the_clock_panel_is_drawn_for_runs_with_clock_faults_only(tmp_path: Path) -> None:
    plain = build_run(tmp_path / "a", n_ops=200, linear=False)
    html = render_run(plain.run_dir).read_text()
    assert 'id="clocks"' not in html and html.count("data:image/png;base64,") == 2

    clocked = build_run(tmp_path / "b", n_ops=200, linear=False)
    history = add_clock_faults(clocked.run_dir)
    cs = series(history)
    # the report holds only the nemesis records as dicts, and the history's end
    assert series([h for h in history if h["process"] == "nemesis"], end_ns=max(h["time"] for h in history)) == cs
    assert [(p.t, p.offset_s, p.rate) for p in cs.points["n3"]] == [(2.0, 0.0, 0.5), (4.0, -1.0, 1.0), (6.5, 0.0, 1.0)]
    assert [(s.nodes, s.start, s.end, s.offset_s) for s in cs.strobes] == [(["n1"], 5.0, 6.0, 2.0)]
    html = render_run(clocked.run_dir).read_text()
    assert '<section id="clocks">' in html and html.count("data:image/png;base64,") == 3
    assert re.search(r'<img alt="node clocks over time" src="data:image/png;base64,', html)
    panel = html[html.index('<section id="clocks">'):]
    panel = panel[:panel.index("</section>")]
    rows = dict(re.findall(r"<tr><td>(n\d)</td><td>([^<]*)</td>", panel))
    assert rows == {"n1": "+0.000 s", "n2": "+0.000 s", "n3": "-1.000 s"}  # furthest behind
    assert "<td>n1</td><td>+0.000 s</td><td>+2.000 s</td>" in html  # the strobe's reach
    assert "<td>n3</td><td>-1.000 s</td><td>+0.000 s</td><td>0.5x</td><td>1x</td>" in html


def test_events_stamped_by_a_slowed_clock_are_drawn_on_true_time(tmp_path: Path) -> None:
    run = build_run(tmp_path, n_ops=200, linear=False)
    events = run.events
    # n2's clock ran at 0.5 from START_WALL + 0.1 on: rewrite its stamps as it would have read them
    a_real = START_WALL + 0.1
    faked = {**events, "n2": [dict(e, ts=e["ts"] if e["ts"] < a_real else a_real + (e["ts"] - a_real) * 0.5)
                              for e in events["n2"]]}
    (run.run_dir / "nodes" / "n2" / "clock.applied").write_text(
        anchors_text([(START_WALL - 1, START_WALL - 1, 1.0), (a_real, a_real, 0.5)]))
    problems: list[str] = []
    maps = clock_maps(run.run_dir, problems)
    assert set(maps) == {"n2"} and problems == []
    wrong = raft.build(None, faked, [])
    right = raft.build(None, faked, [], maps)
    truth = raft.build(None, events, [])
    assert wrong is not None and right is not None and truth is not None
    assert [(n, t) for _, n, t in right.leaders] == [(n, t) for _, n, t in truth.leaders] == [("n1", 2), ("n2", 3)]
    assert [ts for ts, _, _ in right.leaders] == pytest.approx([ts for ts, _, _ in truth.leaders], abs=1e-6)
    assert abs(wrong.leaders[1][0] - truth.leaders[1][0]) > 0.3, "n2's own clock puts its win early"
    assert right.true_time == ["n2"] and truth.true_time == []
    # a checker timeline from the faked stamps is moved the same way
    seg = {"n2": [{"start": e["ts"], "end": e["ts"] + 0.01 * 0.5, "role": "follower", "term": 1, "boot": 1}
                  for e in faked["n2"] if e["type"] == "role"]}
    moved = raft.build(CheckResult("raft-safety", True, {"timeline": seg}), faked, [], maps)
    assert moved is not None and "n2 follower term 1" in moved.svg


def test_term_changes_are_marked_and_counted_per_node(tmp_path: Path) -> None:
    run = build_run(tmp_path, n_ops=200, linear=False)
    rt = raft.build(None, run.events, [])
    assert rt is not None
    by_node = {e.node: e for e in rt.elections}
    # n1 leads term 2 and comes back after its restart in term 3; n2 campaigns and wins term 3
    assert (by_node["n1"].first_term, by_node["n1"].last_term, by_node["n1"].campaigns, by_node["n1"].led_terms) == (1, 3, 1, 1)
    assert (by_node["n2"].term_changes, by_node["n2"].campaigns, by_node["n2"].led_terms) == (2, 1, 1)
    assert rt.svg.count('class="rf-term-up"') == sum(e.term_changes for e in rt.elections)
    assert "n2: term 2 → 3 (candidate)" in rt.svg
    html = render_run(run.run_dir).read_text()
    assert 'id="elections"' in html and "<tr><td>n2</td><td>1 – 3</td><td>2</td>" in html
