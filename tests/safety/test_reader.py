"""Reading nodes/*/events.jsonl: corrupt lines, torn tails of killed nodes, streaming."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from checkers.safety import (
    EventFormatError,
    EventLogError,
    check,
    check_run,
    iter_node_events,
    read_events,
)
from checkers.safety import events as events_module
from tests.support.safety_events import healthy


def write_run(tmp_path: Path, events: dict[str, list[dict]], tails: dict[str, str] | None = None
              ) -> Path:
    for node, evs in events.items():
        d = tmp_path / "nodes" / node
        d.mkdir(parents=True)
        text = "".join(json.dumps(e) + "\n" for e in evs) + (tails or {}).get(node, "")
        (d / "events.jsonl").write_text(text)
    return tmp_path


def test_read_events_round_trips_and_checks(tmp_path: Path) -> None:
    run = healthy()
    run_dir = write_run(tmp_path, run.events)
    assert read_events(run_dir) == run.events
    assert check_run(run_dir).valid is True


def test_run_without_events_is_unknown(tmp_path: Path) -> None:
    assert read_events(tmp_path) == {}
    result = check_run(tmp_path)
    assert result.valid == "unknown"
    assert result.details["violations"] == []


def test_corrupt_line_names_file_and_line(tmp_path: Path) -> None:
    run = healthy()
    run_dir = write_run(tmp_path, run.events)
    path = run_dir / "nodes" / "n2" / "events.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[6] = '{"ts": 1, "node": "n2", "boot": 1, "type": "role", "term": }\n'
    path.write_text("".join(lines))
    with pytest.raises(EventLogError, match=r"n2/events\.jsonl:7: not a JSON event object"):
        read_events(run_dir)


def test_non_object_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "boot"}\n[1, 2]\n{"type": "boot"}\n')
    with pytest.raises(EventLogError, match=r"events\.jsonl:2:"):
        list(iter_node_events(path))


def test_torn_last_line_is_tolerated_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                  ) -> None:
    run = healthy()
    run_dir = write_run(tmp_path, run.events, tails={"n3": '{"ts": 1700000001.5, "node": "n3", "bo'})
    with caplog.at_level(logging.WARNING):
        read = read_events(run_dir)
    assert read == run.events
    assert "events.jsonl:" in caplog.text and "torn last line" in caplog.text


def test_torn_line_followed_by_restart_is_tolerated(tmp_path: Path) -> None:
    run = healthy()
    before = list(run.events["n3"])
    boot = run.boot("n3", term=2, vote="n2", commit=8)
    torn = '{"ts": 1700000001.5, "node": "n3", "boot": 1, "type": "app'
    for glue in ("", "\n"):  # the restart's first line glued to the torn one, or on its own
        path = tmp_path / f"events{len(glue)}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in before) + torn + glue
                        + json.dumps(boot) + "\n")
        assert list(iter_node_events(path)) == before + [boot]


def test_corrupt_line_at_chunk_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "CHUNK_LINES", 4)
    run = healthy()
    evs = run.events["n1"]
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(e) + "\n" for e in evs]
    path.write_text("".join(lines))
    assert list(iter_node_events(path)) == evs  # many chunks, all fast path
    lines[3] = lines[3][:20] + "\n"  # the last line of the first chunk, not a torn tail
    path.write_text("".join(lines))
    with pytest.raises(EventLogError, match=r":4: not a JSON event object"):
        list(iter_node_events(path))


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    run = healthy()
    evs = run.events["n1"]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) + "\n" for e in evs))
    assert list(iter_node_events(path)) == evs


def test_event_lacking_a_field_is_a_one_line_error() -> None:
    run = healthy()
    del run.events["n2"][10]["term"]
    with pytest.raises(EventFormatError, match=r"node n2: event lacks field 'term'"):
        check(run.events)


def test_evidence_has_the_results_json_shape() -> None:
    run = healthy()
    run.role("n3", "candidate", 2)
    run.role("n3", "leader", 2, "n3")
    result = check(run.events)
    doc = result.to_json()
    json.dumps(doc)  # serialisable as is
    assert doc["valid"] is False
    [v] = doc["violations"]
    assert set(v) >= {"kind", "message", "nodes", "term", "index", "ts", "events"}
    assert v["nodes"] == ["n2", "n3"] and v["term"] == 2 and v["index"] is None
    assert v["ts"] == max(e["ts"] for e in v["events"])
    assert all(e["role"] == "leader" and e["term"] == 2 for e in v["events"])
    assert "\n" not in v["message"]
    for node, segments in doc["timeline"].items():
        assert segments, node
        for s in segments:
            assert set(s) == {"start", "end", "role", "term", "boot"}
            assert s["start"] <= s["end"]
    assert ("leader", 2) in [(s["role"], s["term"]) for s in doc["timeline"]["n3"]]
    assert doc["stats"]["violations_by_kind"] == {"election-safety": 1}


def test_repeated_divergence_is_reported_once_per_kind_cap() -> None:
    run = healthy()
    for i in range(9, 60):
        run.apply("n1", i, 2, data="a")
        run.apply("n2", i, 2, data="b")
    result = check(run.events)
    stats = result.details["stats"]
    assert stats["violations_by_kind"]["state-machine-safety"] == 51
    assert stats["violations_suppressed"]["state-machine-safety"] == 31
    assert len(result.details["violations"]) == 20
