"""render_run / render_index on realistic run folders, and on broken or partial ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.rundata import pair_ops
from reports import render_run
from reports.counterexample import build as build_cx
from reports.ops import fault_intervals
from reports.raft import segments_from_events
from reports.summary import reproduce_command, verdict_label
from reports.timeline import script_json, timeline_data
from tests.support.runfactory import rendered_store


def _timeline_json(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', html, re.S)
    assert m, "timeline data missing"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    made = rendered_store(tmp_path_factory)
    assert made["valid_results"]["valid"] is True, made["valid_results"]
    checkers = made["anomaly_results"]["checkers"]
    assert checkers["linearizability"]["valid"] is False
    assert checkers["raft-safety"]["valid"] is False
    return made


def test_valid_report_has_banner_timeline_plots_and_no_counterexample(runs: dict[str, Path]) -> None:
    html = (runs["valid"] / "report.html").read_text()
    assert 'id="banner" class="banner valid" data-verdict="valid"' in html
    assert 'data-checker="linearizability" data-verdict="valid"' in html
    assert 'id="counterexample"' not in html
    assert "faultline run configs/local.yaml --seed 3" in html
    assert html.count("data:image/png;base64,") == 2
    data = _timeline_json(html)
    history = [json.loads(x) for x in (runs["valid"] / "history.jsonl").read_text().splitlines()]
    invokes = [h for h in history if h["type"] == "invoke" and h["process"] != "nemesis"]
    assert len(data["s"]) == len(data["e"]) == len(data["d"]) == len(invokes)
    assert data["rows"] == [f"worker {w}" for w in range(5)]
    assert {f["name"] for f in data["faults"]} == {"partition", "kill"}
    assert data["marks"] == []
    assert "Raft timeline" in html and "rf-leader" in html
    # nothing is fetched from elsewhere: the page is self-contained
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)
    for f in ("history.jsonl", "results.json", "nodes/n1/events.jsonl", "nodes/n1/node.log"):
        assert f'href="{f}"' in html


def test_anomaly_report_links_counterexample_and_violation(runs: dict[str, Path]) -> None:
    html = (runs["anomaly"] / "report.html").read_text()
    assert 'class="banner anomaly" data-verdict="anomaly"' in html
    assert 'data-checker="linearizability" data-verdict="anomaly"' in html
    assert 'data-checker="raft-safety" data-verdict="anomaly"' in html
    assert '<a href="#counterexample">' in html and '<section id="counterexample">' in html
    # the read of a never-written value is the op that cannot be placed
    assert re.search(r'class="cx-op cx-bad"><title>op \d+ process 10000: read → 42', html)
    marks = _timeline_json(html)["marks"]  # the failure is pointed at on the ops timeline
    assert len(marks) == 1 and "cannot be linearized" in marks[0]["label"]
    assert 'id="violation-1"' in html and "election-safety" in html
    assert 'class="rf-viol"' in html


def test_index_lists_runs_newest_first_with_trend(runs: dict[str, Path]) -> None:
    html = (runs["store"] / "index.html").read_text()
    rows = re.findall(r'<tr class="run" data-verdict="(\w+)" data-test="([^"]+)">', html)
    assert rows == [("anomaly", "raftkv-register"), ("valid", "raftkv-register")]
    assert html.index("20261126T110000-4/report.html") < html.index("20261126T100000-3/report.html")
    assert 'class="trend-row" data-test="raftkv-register"' in html and "<circle" in html


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"history.jsonl": '{"index":0,"time":5,"process":0,"type":"invoke","f":"read"}\n{"index":1,"ti'},
        {"results.json": "{not json", "test.yaml": "- a list\n"},
        {"test.yaml": "seed: [unclosed", "results.json": json.dumps({"valid": "unknown", "checkers": []})},
        {"results.json": json.dumps({"valid": False, "checkers": {"linearizability": {
            "valid": False, "model": "kv", "counterexample": {"ops": [{"no": "id"}], "longest": "x"}}}})},
        {"results.json": json.dumps({"valid": True, "checkers": {"raft-safety": {
            "valid": True, "timeline": {"n1": [{"start": "x"}, 3, {"start": 1.0, "end": None, "role": "leader"}]}}}})},
    ],
    ids=["empty", "torn-history", "garbage", "bad-yaml", "bad-counterexample", "bad-timeline"],
)
def test_partial_or_broken_run_folders_render(tmp_path: Path, files: dict[str, str]) -> None:
    run_dir = tmp_path / "t" / "20261126T000000-1"
    run_dir.mkdir(parents=True)
    for name, body in files.items():
        (run_dir / name).write_text(body)
    html = render_run(run_dir).read_text()
    assert 'id="render-status"' in html
    assert 'id="missing"' in html  # what is absent or unreadable is said on the page
    assert "seed" in html


def test_corrupt_history_and_results_are_read_as_far_as_possible_and_said(tmp_path: Path) -> None:
    run_dir = tmp_path / "t" / "20261126T000000-1"
    run_dir.mkdir(parents=True)
    lines = [{"index": 0, "time": 5, "process": 0, "type": "invoke", "f": "read"},
             {"index": 1, "time": 9, "process": 0, "type": "ok", "f": "read", "value": 3},
             {"index": 2, "time": 12, "process": 1, "type": "invoke", "f": "write", "value": 4}]
    body = [json.dumps(x) for x in lines]
    (run_dir / "history.jsonl").write_text("\n".join([body[0], "{garbage", body[1], body[2], '{"index": 3, "ti']))
    (run_dir / "results.json").write_text('{"valid": tr')
    html = render_run(run_dir).read_text()
    assert "history.jsonl: 2 malformed line(s) skipped, first at line 2" in html
    assert "results.json: not valid JSON (Expecting value at line 1)" in html
    assert _timeline_json(html)["e"] == [0, -1]  # the read completed, the write never did


def test_an_anomaly_without_linked_evidence_says_why(tmp_path: Path) -> None:
    run_dir = tmp_path / "t" / "20261126T000000-3"
    run_dir.mkdir(parents=True)
    results = {"valid": False, "checkers": {
        "log": {"valid": False, "violations": [{"kind": "lost", "message": "entry 7 lost"}]},
        "raft-safety": {"valid": "unknown", "stats": {"message": "no node events to check"}}}}
    (run_dir / "results.json").write_text(json.dumps(results))
    html = render_run(run_dir).read_text()
    assert '<div class="note">log: entry 7 lost</div>' in html
    assert '<div class="note">raft-safety: no node events to check</div>' in html


def test_missing_run_dir_is_a_one_line_error(tmp_path: Path) -> None:
    from reports.render import ReportError

    with pytest.raises(ReportError, match="no such directory"):
        render_run(tmp_path / "nope")


def test_pairing_and_faults() -> None:
    h = [
        {"time": 0, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1},
        {"time": 1, "process": "nemesis", "type": "info", "f": "start-partition", "value": {"kind": "halves"}},
        {"time": 2, "process": 1, "type": "invoke", "f": "read", "key": "a", "value": None},
        {"time": 3, "process": 0, "type": "info", "f": "write", "key": "a", "value": 1, "error": "timeout"},
        {"time": 4, "process": 1, "type": "ok", "f": "read", "key": "a", "value": 1},
        {"time": 5, "process": "nemesis", "type": "info", "f": "stop-partition"},
        {"time": 6, "process": "nemesis", "type": "info", "f": "start-pause", "value": ["n2"]},
        {"time": 7, "process": 5, "type": "invoke", "f": "cas", "key": "a", "value": [1, 2]},
    ]
    ops = pair_ops(h)
    assert [(o.f, o.type, o.invoke, o.complete) for o in ops] == [
        ("write", "info", 0, 3), ("read", "ok", 2, 4), ("cas", "info", 7, None)]
    assert ops[1].output == 1 and ops[0].error == "timeout"
    faults = fault_intervals(h)
    assert [(f.name, f.start, f.end, f.closed) for f in faults] == [("partition", 1, 5, True), ("pause", 6, 7, False)]
    tl = timeline_data(ops, faults, concurrency=5)
    assert tl["rows"] == ["worker 0", "worker 1"]  # process 5 folds onto worker 0
    assert tl["row"] == [0, 1, 0] and tl["e"][2] == -1 and tl["k"] == [2, 0, 2]


def test_script_json_cannot_close_the_script_element() -> None:
    text = script_json({"d": ["</script><script>alert(1)</script>", "a&b"]})
    assert "</script" not in text and "<" not in text
    assert json.loads(text)["d"][0].startswith("</script>")


def test_reproduce_command_and_verdict_labels(tmp_path: Path) -> None:
    assert reproduce_command({"config": "configs/x y.yaml"}, tmp_path, 9) == "faultline run 'configs/x y.yaml' --seed 9"
    assert reproduce_command({"command": ["faultline", "run", "c.yaml", "--seed", 1]}, tmp_path, 1) == \
        "faultline run c.yaml --seed 1"
    assert reproduce_command({}, tmp_path, None) == f"faultline run {tmp_path / 'test.yaml'}"
    assert [verdict_label(v) for v in (True, False, "unknown", None)] == ["valid", "anomaly", "unknown", "unknown"]


def test_raft_segments_from_events_show_downtime_between_boots() -> None:
    ev = {"n1": [
        {"ts": 10.0, "node": "n1", "boot": 1, "type": "boot", "term": 1},
        {"ts": 11.0, "node": "n1", "boot": 1, "type": "role", "role": "leader", "term": 2},
        {"ts": 12.0, "node": "n1", "boot": 1, "type": "commit", "index": 3},
        {"ts": 20.0, "node": "n1", "boot": 2, "type": "boot", "term": 2},
        {"ts": 21.0, "node": "n1", "boot": 2, "type": "role", "role": "follower", "term": 3},
    ]}
    segs = [(s.start, s.end, s.role, s.term, s.boot) for s in segments_from_events(ev)["n1"]]
    assert segs == [(10.0, 11.0, "follower", 1, 1), (11.0, 12.0, "leader", 2, 1),
                    (20.0, 21.0, "follower", 2, 2), (21.0, 21.0, "follower", 3, 2)]


def test_counterexample_marks_unplaceable_and_numbers_linearization() -> None:
    cx = {"key": "k", "message": "m", "unplaceable": [2, 2], "longest": [[1], [0]], "states": [["1"], ["0"]],
          "ops": [{"id": 0, "process": 0, "f": "write", "value": 0, "invoke": 0, "complete": 10, "type": "ok"},
                  {"id": 1, "process": 1, "f": "write", "value": 1, "invoke": 5, "complete": 15, "type": "ok"},
                  {"id": 2, "process": 2, "f": "read", "output": 7, "invoke": 20, "complete": 30, "type": "ok"}]}
    built = build_cx(cx, "register")
    assert len(built.unplaceable) == 1 and len(built.linearizations) == 2
    first = built.linearizations[0]
    assert first.steps == [(1, "write 1", "1")]
    assert first.svg.count('class="cx-op cx-lin"') == 1 and first.svg.count('class="cx-op cx-bad"') == 1
    assert "#1 write 1" in first.svg


events = st.fixed_dictionaries({
    "time": st.integers(0, 10**12),
    "process": st.one_of(st.integers(0, 6), st.just("nemesis")),
    "type": st.sampled_from(["invoke", "ok", "fail", "info"]),
    "f": st.sampled_from(["read", "write", "cas", "start-kill", "stop-kill", "heal", "odd"]),
    "value": st.one_of(st.none(), st.integers(), st.lists(st.integers(), max_size=2)),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(events, max_size=40))
def test_any_history_pairs_without_losing_invokes(history: list[dict]) -> None:
    history.sort(key=lambda h: h["time"])
    ops = pair_ops(history)
    assert len(ops) == sum(1 for h in history if h["type"] == "invoke" and h["process"] != "nemesis")
    for f in fault_intervals(history):
        assert f.start <= f.end
    tl = timeline_data(ops, fault_intervals(history), None)
    assert all(e == -1 or e >= s for s, e in zip(tl["s"], tl["e"], strict=True))


def test_unknown_checker_says_why_and_counterexample_needs_an_anomaly(tmp_path: Path) -> None:
    run_dir = tmp_path / "t" / "20261126T000000-2"
    run_dir.mkdir(parents=True)
    cx: dict[str, Any] = {"key": None, "ops": [{"id": 0, "process": 0, "f": "read", "invoke": 0, "complete": 1, "type": "ok"}],
          "longest": [[]], "states": [[]], "unplaceable": [0], "message": "m"}
    results = {"valid": "unknown", "checkers": {
        "linearizability": {"valid": "unknown", "model": "kv", "counterexample": cx,
                            "partitions": [{"key": "k1", "valid": "unknown", "ops": 9, "reason": "time limit"}]},
        "raft-safety": {"valid": True}}}
    (run_dir / "results.json").write_text(json.dumps(results))
    html = render_run(run_dir).read_text()
    assert 'class="banner unknown" data-verdict="unknown"' in html
    assert '<div class="note">linearizability: k1: time limit</div>' in html
    assert 'id="counterexample"' not in html


def test_index_takes_op_counts_from_stats_and_skips_latest_symlink(tmp_path: Path) -> None:
    from reports import render_index

    for i, valid in enumerate((True, False, "unknown")):
        run_dir = tmp_path / "soak-test" / f"2026112{i}T000000-{i}"
        run_dir.mkdir(parents=True)
        stats = {"valid": True, "throughput": 10.0 * (i + 1), "ops": {"read": {"ok": 5 + i, "fail": 1, "info": 0}}}
        (run_dir / "results.json").write_text(json.dumps({"valid": valid, "checkers": {"stats": stats}}))
        (run_dir / "history.jsonl").write_text('{"time": 1500000000, "process": 0, "type": "ok"}\n')
    (tmp_path / "latest").symlink_to(run_dir.relative_to(tmp_path))
    html = render_index(tmp_path).read_text()
    rows = re.findall(r'<tr class="run" data-verdict="(\w+)"', html)
    assert rows == ["unknown", "anomaly", "valid"]  # newest first, latest not counted twice
    assert re.findall(r"<td>1\.5 s</td>\s*<td>(\d+)</td>", html) == ["8", "7", "6"]
    assert html.count("<circle") == 3 and "<polyline" in html


def test_index_lists_soaks_with_their_totals(tmp_path: Path) -> None:
    from reports import render_index

    soak = tmp_path / "soak" / "20261126T010000-77"
    soak.mkdir(parents=True)
    totals = {"runs": 3, "valid": 1, "anomalies": 2, "unknown": 0, "infra": 0, "retried": 0}
    (soak / "soak-summary.json").write_text(json.dumps(
        {"version": 1, "master_seed": 77, "started": 1764118800.0, "totals": totals, "exit_code": 1}))
    (soak / "soak.html").write_text("<html></html>")
    broken = tmp_path / "soak" / "20261126T020000-78"
    broken.mkdir()
    (broken / "soak-summary.json").write_text("{torn")
    html = render_index(tmp_path).read_text()
    assert "<h2>Soaks</h2>" in html
    row = re.search(r"<tr><td>[^<]*</td><td>77</td>(.*?)</tr>", html)
    assert row is not None
    assert re.findall(r"<td>([^<]*)</td>", row.group(1))[:6] == ["3", "1", "2", "0", "0", "1"]
    assert 'href="soak/20261126T010000-77/soak.html"' in row.group(1)
    assert "<td>78</td>" not in html  # an unreadable summary is left out, not fatal


def test_lost_writes_are_named_and_marked(tmp_path: Path) -> None:
    run_dir = tmp_path / "t" / "20261207T000000-3"
    run_dir.mkdir(parents=True)
    history = [
        {"index": 0, "time": 10, "process": 0, "type": "invoke", "f": "write", "key": "k1", "value": 4},
        {"index": 1, "time": 2_000, "process": 0, "type": "ok", "f": "write", "key": "k1", "value": 4},
        {"index": 2, "time": 3_000, "process": "nemesis", "type": "info", "f": "start-lose-unsynced",
         "value": {"kind": "all", "nodes": ["n1", "n2", "n3"]}},
        {"index": 3, "time": 4_000, "process": "nemesis", "type": "info", "f": "stop-lose-unsynced",
         "value": {"kind": "all", "restarted": ["n1", "n2", "n3"]}},
    ]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    lost = {"valid": False, "message": "1 acknowledged write(s) lost: k1: 4 (final read 3 on n2)",
            "lost": [{"key": "k1", "node": "n2", "read": 3, "last_acked": 4, "lost": [4],
                      "lost_ops": [{"f": "write", "value": 4, "invoke": 10, "acked": 2_000}]}]}
    (run_dir / "results.json").write_text(json.dumps({"valid": False, "checkers": {"lost-writes": lost}}))
    html = render_run(run_dir).read_text()
    assert '<a href="#lost-writes">Lost writes: 1 acknowledged write(s) lost: k1: 4 (final read 3 on n2)</a>' in html
    section = html.split('id="lost-writes"', 1)[1].split("</section>", 1)[0]
    assert "<td>n2</td>" in section and '<td class="mono">4</td>' in section
    marks = _timeline_json(html)["marks"]
    assert marks == [{"t": 2, "label": "✗ lost write k1=4 (acknowledged here)"}]
    assert [f["name"] for f in _timeline_json(html)["faults"]] == ["lose-unsynced"]
