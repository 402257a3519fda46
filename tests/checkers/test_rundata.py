"""checkers.rundata: reading history.jsonl (strict and tolerant), skimming it, pairing
invocations with completions, and the run folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.history import HistoryError
from checkers.rundata import HistoryFormatError, StoredRun, pair_ops, read_records, skim_history


def rec(t: int, process: Any, type_: str, f: str = "write", value: Any = None, **extra: Any) -> dict[str, Any]:
    return {"time": t, "process": process, "type": type_, "f": f, "value": value, **extra}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = [json.dumps(rec(i, 0, "invoke" if i % 2 == 0 else "ok", value=i)) for i in range(4)]


# ---------------------------------------------------------------- reading


def test_strict_and_tolerant_read_a_good_file_alike(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "history.jsonl", [GOOD[0], "", GOOD[1], GOOD[2], GOOD[3]])
    problems: list[str] = []
    strict = read_records(path)
    assert [r["value"] for r in strict] == [0, 1, 2, 3]
    assert [r["_line"] for r in strict] == [1, 3, 4, 5]
    assert read_records(path, tolerant=True, problems=problems) == strict and problems == []


def test_torn_last_line_is_skipped_and_noted_when_tolerant(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(GOOD) + "\n" + GOOD[0][:9])  # killed mid-write
    assert [r["value"] for r in read_records(path)] == [0, 1, 2, 3]
    problems: list[str] = []
    assert [r["value"] for r in read_records(path, tolerant=True, problems=problems)] == [0, 1, 2, 3]
    assert problems == ["history.jsonl: torn last line 5 skipped (the run was killed mid-write?)"]


def test_a_last_line_without_newline_is_not_torn(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(GOOD))
    problems: list[str] = []
    assert len(read_records(path, tolerant=True, problems=problems)) == 4 and problems == []


def test_torn_line_longer_than_the_tail_window_is_found(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    big = json.dumps(rec(9, 1, "invoke", value="x" * 200_000))
    path.write_text(GOOD[0] + "\n\n" + big[:150_000] + "\n\n")
    problems: list[str] = []
    assert len(read_records(path, tolerant=True, problems=problems)) == 1
    assert problems == ["history.jsonl: torn last line 3 skipped (the run was killed mid-write?)"]


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
def test_corrupt_middle_line_is_an_error_when_strict_and_skipped_when_tolerant(tmp_path: Path, bad: str) -> None:
    path = write_lines(tmp_path / "history.jsonl", [GOOD[0], bad, GOOD[1], bad, GOOD[2]])
    with pytest.raises(HistoryError, match=r"history\.jsonl:2: "):
        read_records(path)
    problems: list[str] = []
    records = read_records(path, tolerant=True, problems=problems)
    assert [(r["value"], r["_line"]) for r in records] == [(0, 1), (1, 3), (2, 5)]
    assert problems == ["history.jsonl: 2 malformed line(s) skipped, first at line 2"]


def test_tolerant_read_of_an_unreadable_file_is_a_note(tmp_path: Path) -> None:
    problems: list[str] = []
    assert read_records(tmp_path, tolerant=True, problems=problems) == []  # a directory
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path.name}: cannot read")
    with pytest.raises(HistoryError, match="cannot read"):
        read_records(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("bad", ["[" * 3000 + "]" * 3000, '{"value": ' + "9" * 5000 + "}", '{"time": NaN}',
                                 '{"value": 1e400}', "[" * 3000])
def test_hostile_lines_are_errors_when_strict_and_skipped_when_tolerant(tmp_path: Path, bad: str) -> None:
    for lines, at in (([GOOD[0], bad, GOOD[1]], 2), ([GOOD[0], GOOD[1], bad], 3)):  # also as the last line
        path = write_lines(tmp_path / "history.jsonl", lines)
        with pytest.raises(HistoryError, match=rf"history\.jsonl:{at}: corrupt line"):
            read_records(path)
        problems: list[str] = []
        assert [r["value"] for r in read_records(path, tolerant=True, problems=problems)] == [0, 1]
        assert problems == [f"history.jsonl: 1 malformed line(s) skipped, first at line {at}"]


def test_tolerant_read_of_a_fifo_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "history.jsonl"
    os.mkfifo(fifo)
    problems: list[str] = []
    assert read_records(fifo, tolerant=True, problems=problems) == []
    assert problems == ["history.jsonl: cannot read: not a regular file"]


def test_tolerant_read_salvages_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(GOOD[0].encode() + b"\n\xff\xfe{\n" + GOOD[1].encode() + b"\n")
    problems: list[str] = []
    assert [r["value"] for r in read_records(path, tolerant=True, problems=problems)] == [0, 1]
    assert problems == ["events.jsonl: 1 malformed line(s) skipped, first at line 2"]


# ---------------------------------------------------------------- skimming


def test_skim_counts_client_invocations_and_reads_the_last_time_from_the_tail(tmp_path: Path) -> None:
    lines = [rec(10, 0, "invoke"), rec(20, "nemesis", "info", "start-kill"), rec(30, 0, "ok"),
             {"process": "nemesis", "type": "invoke", "f": "heal", "time": 35},
             rec(40, 1, "invoke", value="\"type\": \"ok\""), rec(50_000_000_000, 1, "info")]
    path = write_lines(tmp_path / "history.jsonl", [json.dumps(x, separators=(",", ":")) for x in lines])
    assert skim_history(path) == skim_history(path, count_ops=True)
    skim = skim_history(path)
    assert (skim.client_ops, skim.last_time) == (2, 50_000_000_000)
    assert skim_history(path, count_ops=False).client_ops is None
    (tmp_path / "empty.jsonl").write_text("")
    assert skim_history(tmp_path / "empty.jsonl").last_time == 0


# ---------------------------------------------------------------- pairing


def test_pairing_by_process_with_jepsen_semantics() -> None:
    history = [
        rec(0, 0, "invoke", "write", 1, key="a", node="n1"),
        rec(1, "nemesis", "info", "start-partition"),
        rec(2, 1, "invoke", "read", key="a"),
        rec(3, 0, "info", "write", 1, key="a", error="timeout"),
        rec(4, 1, "ok", "read", 1, key="a"),
        rec(5, 2, "invoke", "cas", [1, 2]),
        rec(6, 2, "invoke", "read"),  # invoked again without completing: the cas is indeterminate
        rec(7, 2, "fail", "read", error="no leader"),
        rec(8, 3, "invoke", "read"),  # the history ends first
    ]
    ops = pair_ops(history)
    assert [(o.process, o.f, o.type, o.invoke, o.complete) for o in ops] == [
        (0, "write", "info", 0, 3), (1, "read", "ok", 2, 4), (2, "cas", "info", 5, None),
        (2, "read", "fail", 6, 7), (3, "read", "info", 8, None)]
    assert (ops[0].key, ops[0].value, ops[0].error, ops[0].node) == ("a", 1, "timeout", "n1")
    assert ops[1].output == 1 and ops[3].error == "no leader"


def test_completion_without_invocation_is_unmatched() -> None:
    unmatched: list[Any] = []
    history = [rec(0, 0, "ok", "read", 3), rec(1, 1, "invoke"), rec(2, 1, "ok")]
    assert [o.process for o in pair_ops(history, unmatched=unmatched)] == [1]
    assert unmatched == [history[0]]
    assert len(pair_ops(history)) == 1


def test_unhashable_processes_pair() -> None:
    ops = pair_ops([rec(0, [1, "a"], "invoke"), rec(1, [1, "a"], "ok")])
    assert [(o.type, o.complete) for o in ops] == [("ok", 1)]


def test_lenient_pairing_takes_odd_records_and_strict_refuses_them() -> None:
    odd = [{"process": 0, "type": "invoke", "f": "read"}, rec(3, 0, "weird", "read"), rec(4.5, 0, "ok", "read")]  # type: ignore[arg-type]
    assert [(o.invoke, o.complete, o.type) for o in pair_ops(odd)] == [(0, 4, "ok")]
    with pytest.raises(HistoryFormatError, match="history op 0 lacks field 'time'"):
        pair_ops(odd, strict=True)
    with pytest.raises(HistoryFormatError, match="history op 7: unknown type 'weird'"):
        pair_ops([{**odd[1], "index": 7}], strict=True)
    with pytest.raises(HistoryFormatError, match="time 'x' is not a number"):
        pair_ops([rec(0, 2, "invoke") | {"time": "x"}], strict=True)


events = st.fixed_dictionaries({
    "time": st.integers(0, 10**12),
    "process": st.one_of(st.integers(0, 4), st.just("nemesis")),
    "type": st.sampled_from(["invoke", "ok", "fail", "info"]),
    "f": st.sampled_from(["read", "write", "cas"]),
})


@settings(max_examples=80, deadline=None)
@given(st.lists(events, max_size=40))
def test_every_invocation_is_one_op_and_every_completion_is_used_once(history: list[dict[str, Any]]) -> None:
    unmatched: list[Any] = []
    ops = pair_ops(history, strict=True, unmatched=unmatched)
    client = [h for h in history if h["process"] != "nemesis"]
    assert len(ops) == sum(1 for h in client if h["type"] == "invoke")
    completed = sum(1 for o in ops if o.complete is not None)
    assert completed + len(unmatched) == sum(1 for h in client if h["type"] != "invoke")
    assert all(o.type != "invoke" for o in ops)


# ---------------------------------------------------------------- the run folder


def test_stored_run_reads_history_once_and_finds_the_first_boot(tmp_path: Path) -> None:
    write_lines(tmp_path / "history.jsonl", GOOD)
    run = StoredRun(tmp_path)
    assert run.history() is run.history() and len(run.history()) == 4
    assert StoredRun(tmp_path / "none").history() == []
    for node, ts in (("n1", 105.0), ("n2", 100.5)):
        d = tmp_path / "nodes" / node
        d.mkdir(parents=True)
        lines = [{"type": "role", "ts": ts - 50}, {"type": "boot", "ts": ts, "boot": 1}, {"type": "boot", "ts": 1.0}]
        write_lines(d / "events.jsonl", ["{torn", *(json.dumps(x) for x in lines)])
    assert run.first_boot_ts() == 100.5
    assert StoredRun(tmp_path / "none").first_boot_ts() is None
