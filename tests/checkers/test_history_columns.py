"""The columnar history.jsonl reader gives exactly the operations of the record-by-record
reader (pair(read_jsonl(...))), block boundaries and torn last lines included, and hands
anything unusual back to it."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers import history_columns
from checkers.history import HistoryError, _all_timed, pair, read_history, read_jsonl, read_table
from checkers.history_columns import Unusual, read_jsonl_table
from checkers.linear import Operation


def facts(o: Operation) -> tuple[Any, ...]:
    return (o.id, o.process, type(o.process), o.f, o.value, o.output, o.invoke, o.complete,
            o.type, o.key, o.call_pos, o.return_pos, o.done_pos)


def old_reader(path: Path) -> list[Operation]:
    records = read_jsonl(path)
    return pair(records, str(path), use_time=_all_timed(records))


def random_records(rng: random.Random, n: int, timed: str) -> list[dict[str, Any]]:
    """Invocations and completions of a few processes, nemesis records between them."""
    records: list[dict[str, Any]] = []
    open_f: dict[int, str] = {}
    t = 0
    for _ in range(n):
        t += rng.choice((0, 1, 5))
        if rng.random() < 0.1:
            rec: dict[str, Any] = {"process": "nemesis", "type": "info", "f": "start-partition",
                                   "value": {"kind": "majority", "groups": [["n1"], ["n2", "n3"]]}}
        else:
            p = rng.randrange(4)
            if p in open_f:
                f = open_f.pop(p)
                typ = rng.choice(("ok", "ok", "fail", "info"))
            else:
                f = open_f[p] = rng.choice(("read", "write", "cas", "delete"))
                typ = "invoke"
            value: Any = rng.choice((None, 1, 2, "x", [1, 2], [3, [4, 5]], {"a": [1]}))
            rec = {"process": p, "type": typ, "f": f, "value": value}
            if rng.random() < 0.8:
                rec["key"] = rng.choice(("k1", "k2", 7))
        if timed == "all" or (timed == "clients" and rec["process"] != "nemesis"):
            rec["time"] = t if rng.random() < 0.9 else t + 0.5
        elif timed == "some" and rng.random() < 0.5:
            rec["time"] = t
        records.append(rec)
    return records


def write_lines(path: Path, records: list[dict[str, Any]], rng: random.Random, tail: str = "") -> Path:
    lines = []
    for r in records:
        lines.append(json.dumps(r))
        if rng.random() < 0.05:
            lines.append(rng.choice(("", "  ", "\r")))
    end = rng.choice(("\n", "\r\n"))
    path.write_text(end.join(lines) + end + tail, encoding="utf-8")
    return path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1), st.integers(0, 60), st.sampled_from(("all", "clients", "some", "none")),
       st.sampled_from(("", '{"process": 1, "ty', "garbage\n\n")), st.sampled_from((1 << 23, 64, 7)))
def test_same_operations_as_the_record_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, n: int, timed: str, tail: str, block: int
) -> None:
    monkeypatch.setattr(history_columns, "BLOCK", block)
    rng = random.Random(seed)
    path = write_lines(tmp_path / f"h{seed}.jsonl", random_records(rng, n, timed), rng, tail)
    try:
        old: list[Operation] | str = old_reader(path)
    except HistoryError as e:
        old = str(e)
    try:
        new: list[Operation] | str = read_history(path)
    except HistoryError as e:
        new = str(e)
    if isinstance(old, str) or isinstance(new, str):
        assert old == new
    else:
        assert [facts(o) for o in new] == [facts(o) for o in old]


def test_a_long_history_is_read_by_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_columns, "BLOCK", 100)  # many blocks, lines across their ends
    rng = random.Random(3)
    records = random_records(rng, 400, "all")
    path = write_lines(tmp_path / "history.jsonl", records, rng)
    try:
        table = read_jsonl_table(path)
    except Unusual as e:  # only nested lists, dicts and half-integer times in these records
        pytest.fail(f"columnar reader refused an ordinary history: {e}")
    assert [facts(o) for o in table.operations()] == [facts(o) for o in old_reader(path)]


def test_torn_last_line_is_skipped_with_the_same_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"process": 0, "type": "invoke", "f": "read", "time": 1}\n\n{"process": 0, "ty\n\n',
                    encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        table = read_jsonl_table(path)
    assert len(table) == 1
    assert "history.jsonl:3: ignoring truncated last line" in caplog.text


@pytest.mark.parametrize(
    "text, why",
    [
        ('{"process": 0, "ty\n{"process": 0, "type": "invoke", "f": "read", "time": 1}\n', "bad line before"),
        ('[1]\n', "not a JSON object"),
        ('{"process": 0, "type": "invoke", "f": "read", "time": 1, "value": 1}\n'
         '{"process": 0, "type": "ok", "f": "read", "time": 2, "value": 1.0}\n', "mix"),
        ('{"process": [0], "type": "invoke", "f": "read", "time": 1}\n', "unhashable"),
        ('{"process": 0, "type": "invoke", "f": "read", "time": 1}\n'
         '{"process": 0, "type": "invoke", "f": "read", "time": 2}\n', "invocation twice"),
    ],
)
def test_unusual_files_go_back_to_the_record_reader(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Unusual, match=why):
        read_jsonl_table(path)


def test_read_table_of_other_formats_keeps_the_operations(corpora: Path) -> None:
    path = corpora / "porcupine/jepsen/etcd_002.log"
    ops = read_history(path)
    table = read_table(path)
    assert [facts(o) for o in table.operations()] == [facts(o) for o in ops]


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_processes_read_the_same_operations(tmp_path: Path, workers: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(workers)
    path = write_lines(tmp_path / "history.jsonl", random_records(rng, 300, "all"), rng, tail='{"process": 1, "ty')
    with caplog.at_level(logging.WARNING):
        alone = read_jsonl_table(path, workers=1)
        shared = read_jsonl_table(path, workers=workers)
    assert [facts(o) for o in shared.operations()] == [facts(o) for o in alone.operations()]
    assert caplog.text.count("ignoring truncated last line") == 2  # once per read, same line


def test_a_bad_line_in_an_early_range_is_no_torn_line(tmp_path: Path) -> None:
    rng = random.Random(5)
    records = random_records(rng, 200, "all")
    lines = [json.dumps(r) for r in records]
    lines[10] = lines[10][:-5]  # corrupt, far from the end
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(Unusual, match="bad line before"):
        read_jsonl_table(path, workers=3)
    with pytest.raises(HistoryError, match=r"history\.jsonl:11: corrupt line"):
        read_table(path)
