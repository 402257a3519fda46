"""The columnar readers (`history_columns`, `opcolumns`, `edn_export`, over `jsonl_blocks`)
read a history.jsonl as the record reader does: a regular file only, a BOM skipped, a torn
last line skipped only after a client record, a corrupt last line, a rounded integer or a
torn line with nothing before it left to the record reader (which names file and line)."""

from __future__ import annotations

import codecs
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from checkers.edn_export import export_edn
from checkers.history import HistoryError, read_jsonl, read_table, write_edn_from_jsonl
from checkers.history_columns import read_jsonl_table
from checkers.jsonl_blocks import HistoryReadError, Unusual
from checkers.opcolumns import read_op_columns
from checkers.rundata import pair_ops, read_records


def _ops(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"process": "nemesis", "type": "info", "f": "start-partition", "time": 0}]
    for i in range(n):
        out.append({"process": i % 3, "type": "invoke", "f": "write", "key": "k", "value": i, "time": 10 * i + 1})
        out.append({"process": i % 3, "type": "ok", "f": "write", "key": "k", "value": i, "time": 10 * i + 5})
    return out


def _write(path: Path, records: list[dict[str, Any]], tail: str = "", bom: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    path.write_bytes((codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8"))
    return path


def _facts(ops: list[Any]) -> list[tuple[Any, ...]]:
    return [(o.process, o.f, o.key, o.value, o.output, o.type, o.invoke, o.complete) for o in ops]


@pytest.mark.parametrize("workers", [1, 3])
def test_a_bom_before_the_first_line_is_skipped(tmp_path: Path, workers: int) -> None:
    path = _write(tmp_path / "history.jsonl", _ops(200), bom=True)
    expected = pair_ops(read_records(path))
    table = read_jsonl_table(path, workers=workers)
    assert len(table) == len(expected) == 200
    cols = read_op_columns(path, workers=workers)
    assert _facts(cols.operations(range(len(cols)))) == _facts(expected)
    assert cols.nemesis_records() == [{"process": "nemesis", "type": "info", "f": "start-partition", "time": 0}]
    write_edn_from_jsonl(path, tmp_path / "one.edn")
    assert export_edn(path, tmp_path / "many.edn", workers=workers + 1) == 401
    assert (tmp_path / "many.edn").read_text() == (tmp_path / "one.edn").read_text()


def test_a_fifo_is_no_history_file(tmp_path: Path) -> None:
    fifo = tmp_path / "history.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(HistoryReadError, match="not a regular file"):
        read_jsonl_table(fifo)
    with pytest.raises(HistoryReadError, match="not a regular file"):
        read_op_columns(fifo)
    with pytest.raises(HistoryError, match="not a regular file"):  # the one-core export says so
        export_edn(fifo, tmp_path / "out.edn", workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl"]


def test_a_torn_line_with_no_client_record_before_it_is_the_record_readers(tmp_path: Path) -> None:
    path = _write(tmp_path / "history.jsonl", _ops(0), tail='{"process": 0, "ty')
    for read in (read_jsonl_table, read_op_columns):
        with pytest.raises(Unusual, match="torn line with no"):
            read(path)
    with pytest.raises(HistoryError, match=r"history\.jsonl:2: corrupt line"):
        read_records(path)
    # the EDN export skips it after any record, as the one-core export does
    write_edn_from_jsonl(path, tmp_path / "one.edn")
    assert export_edn(path, tmp_path / "many.edn", workers=2) == 1
    assert (tmp_path / "many.edn").read_text() == (tmp_path / "one.edn").read_text()


@pytest.mark.parametrize("last", ['{"process": 0, "time": NaN}', '{"process": 0, "time": 1e400}',
                                  "[" * 1500 + "]" * 1500])
def test_a_corrupt_last_line_is_an_error_not_a_torn_line(tmp_path: Path, last: str) -> None:
    path = _write(tmp_path / "history.jsonl", _ops(3), tail=last + "\n")
    for read in (read_jsonl_table, read_op_columns):
        with pytest.raises(Unusual, match="corrupt last line"):
            read(path)
    with pytest.raises(HistoryError, match=r"history\.jsonl:8: corrupt line"):
        read_table(path)
    with pytest.raises(HistoryError, match=r"history\.jsonl:8: corrupt line"):
        export_edn(path, tmp_path / "out.edn", workers=2)


def test_the_torn_line_warning_goes_where_the_caller_says(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "history.jsonl", _ops(3), tail='{"process": 0, "ty')
    expected: list[str] = []
    read_jsonl(path, expected)
    assert len(expected) == 1 and "history.jsonl:8: ignoring truncated last line" in expected[0]
    table_warnings: list[str] = []
    column_warnings: list[str] = []
    with caplog.at_level(logging.WARNING):
        read_jsonl_table(path, warnings=table_warnings)
        read_op_columns(path, warnings=column_warnings)
    assert table_warnings == column_warnings == expected
    assert "ignoring truncated last line" not in caplog.text
    with caplog.at_level(logging.WARNING):
        cols = read_op_columns(path)
    assert cols.records.torn_line == 8 and expected[0] in caplog.text


def test_integers_beyond_64_bits_are_exact_or_unusual(tmp_path: Path) -> None:
    big = 2**70 + 1  # orjson reads it as a rounded float
    recs = _ops(2)
    recs[1]["value"] = recs[2]["value"] = big
    path = _write(tmp_path / "history.jsonl", recs)
    cols = read_op_columns(path)
    ops = cols.operations(range(len(cols)))
    assert ops[0].value == big and type(ops[0].value) is int
    assert _facts(ops) == _facts(pair_ops(read_records(path)))
    with pytest.raises(Unusual, match="beyond 2\\*\\*53|mix ints, floats"):  # (a float among ints)
        read_jsonl_table(path)
    assert read_table(path).operations()[0].value == big  # the record reader keeps it exact
    recs = _ops(2)
    recs[1]["process"] = recs[2]["process"] = float(2**60)
    path = _write(tmp_path / "history.jsonl", recs)
    with pytest.raises(Unusual, match="beyond 2\\*\\*53"):
        read_op_columns(path)
