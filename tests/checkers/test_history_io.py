"""History readers and the EDN writer: formats, pairing, and one-line errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.history import (
    HistoryError,
    guess_format,
    ops_from_records,
    read_edn,
    read_history,
    write_edn,
)
from checkers.linear import UNKNOWN, check, make_model

RECORDS: list[dict[str, Any]] = [
    {"index": 0, "time": 10, "process": 0, "type": "invoke", "f": "write", "key": "k1", "value": 3, "node": "n1"},
    {"index": 1, "time": 15, "process": "nemesis", "type": "info", "f": "start-partition",
     "value": {"kind": "majority", "groups": [["n1", "n2"], ["n3"]]}},
    {"index": 2, "time": 20, "process": 1, "type": "invoke", "f": "cas", "key": "k1", "value": [3, 4]},
    {"index": 3, "time": 30, "process": 0, "type": "ok", "f": "write", "key": "k1", "value": 3},
    {"index": 4, "time": 40, "process": 1, "type": "info", "f": "cas", "key": "k1", "value": [3, 4],
     "error": "timeout"},
    {"index": 5, "time": 50, "process": 2, "type": "invoke", "f": "read", "key": "k1", "value": None},
    {"index": 6, "time": 60, "process": 2, "type": "ok", "f": "read", "key": "k1", "value": 4},
    {"index": 7, "time": 61, "process": 3, "type": "invoke", "f": "delete", "key": "k2", "value": None},
    {"index": 8, "time": 62, "process": 3, "type": "fail", "f": "delete", "key": "k2", "value": None,
     "error": "not-leader"},
    {"index": 9, "time": 70, "process": 4, "type": "invoke", "f": "write", "key": "k2", "value": 9},
]


def write_jsonl(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def test_jsonl_pairs_by_process_and_skips_the_nemesis(tmp_path: Path) -> None:
    ops = read_history(write_jsonl(tmp_path / "history.jsonl", RECORDS))
    assert [(o.f, o.type) for o in ops] == [
        ("write", "ok"), ("cas", "info"), ("read", "ok"), ("delete", "fail"), ("write", "info"),
    ]
    write, cas, read, _, open_write = ops
    assert (write.invoke, write.complete, write.key, write.output) == (10, 30, "k1", None)
    assert cas.output is UNKNOWN and cas.complete == 40 and cas.value == (3, 4)
    assert read.output == 4 and read.value is None
    assert open_write.complete is None  # never completed: stays open to the end
    assert check(make_model("kv"), ops).valid is True  # the crashed cas explains the read of 4


def test_truncated_last_line_is_tolerated_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_jsonl(tmp_path / "history.jsonl", RECORDS[:4], tail='{"index": 4, "time": 4')
    with caplog.at_level(logging.WARNING):
        ops = read_history(path)
    assert len(ops) == 2
    assert "history.jsonl:5" in caplog.text and "truncated" in caplog.text


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"process": 0, "type": "invoke", "f": "read"', '{"process": 0}'], r"history\.jsonl:1: corrupt line"),
        (['{"process": 0, "type": "begin", "f": "read", "time": 1}'], r"history\.jsonl:1: missing or bad"),
        (['[1, 2]', '{}'], r"history\.jsonl:1: expected a JSON object"),
        (['{"process": 0, "type": "ok", "f": "read", "time": 1}'], r"history\.jsonl:1: ok for process 0 with no open"),
        (['{"process": 0, "type": "invoke", "f": "read", "time": 1}',
          '{"process": 0, "type": "invoke", "f": "read", "time": 2}'], r"history\.jsonl:2: process 0 invoked twice"),
        (['{"process": 0, "type": "invoke", "f": "read", "time": 1}',
          '{"process": 0, "type": "ok", "f": "write", "time": 2}'], r"history\.jsonl:2: completion f='write'"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(HistoryError, match=message) as e:
        read_history(path)
    assert "\n" not in str(e.value)


def test_edn_export_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "history.edn"
    write_edn(RECORDS, out)
    text = out.read_text(encoding="utf-8")
    assert ":process :nemesis" in text and ":type :invoke" in text and ":f :cas" in text
    assert [r["type"] for r in read_edn(out)] == [r["type"] for r in RECORDS]
    again = read_history(out)
    first = ops_from_records(RECORDS)
    assert [(o.f, o.type, o.value, o.output, o.key) for o in again] == [
        (o.f, o.type, o.value, o.output, o.key) for o in first
    ]


def test_edn_export_of_operations(tmp_path: Path) -> None:
    ops = ops_from_records(RECORDS)
    write_edn(ops, tmp_path / "ops.edn")
    again = read_history(tmp_path / "ops.edn")
    assert [(o.f, o.type, o.output) for o in again] == [(o.f, o.type, o.output) for o in ops]


def test_edn_reader_handles_comments_sets_and_tags(tmp_path: Path) -> None:
    path = tmp_path / "h.edn"
    path.write_text(
        '; a comment\n[{:process 0, :type :invoke, :f :read, :value nil, :time #inst "2020-01-01T00:00:00Z"}\n'
        ' {:process 0, :type :ok, :f :read, :value #{1 2}}]\n',
        encoding="utf-8",
    )
    (op,) = read_history(path)
    assert op.output == frozenset({1, 2})


@pytest.mark.parametrize("text, message", [("[{:process 0", "not valid EDN"), ("[1 2]", r"bad\.edn:1: not a map: 1")])
def test_edn_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.edn"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HistoryError, match=message):
        read_history(path)


def test_etcd_log_reader(tmp_path: Path) -> None:
    path = tmp_path / "etcd.log"
    path.write_text(
        "INFO  jepsen.core - Running test\n"
        "INFO  jepsen.util - 1\t:invoke\t:write\t1\n"
        "INFO  jepsen.util - 1\t:ok\t:write\t1\n"
        "INFO  jepsen.util - 2\t:invoke\t:cas\t[1 4]\n"
        "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 2\t:fail\t:cas\t[1 4]\n"
        "INFO  jepsen.util - 3\t:fail\t:read\t:timed-out\n"
        "INFO  jepsen.util - 4\t:invoke\t:write\t2\n"
        "INFO  jepsen.util - 4\t:info\t:write\t:timed-out\n",
        encoding="utf-8",
    )
    assert guess_format(path) == "jepsen-etcd-log"
    ops = read_history(path)
    assert [(o.f, o.type, o.output) for o in ops] == [
        ("write", "ok", None), ("cas", "ok", False), ("read", "info", UNKNOWN), ("write", "info", UNKNOWN),
    ]
    # the failed cas observed the register holding something other than 1: impossible
    assert check(make_model("cas-register(initial=nil)"), ops).valid is False


def test_porcupine_kv_reader_fast_and_fallback_paths(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text(
        '{:process 0, :type :invoke, :f :append, :key "4", :value "x 0 1 y"}\n'
        '{:process 0, :type :ok, :f :append, :key "4", :value "x 0 1 y"}\n'
        '{:type :invoke, :process 1, :f :get, :key "4", :value nil}\n'  # other key order
        '{:process 1, :type :ok, :f :get, :key "4", :value "x 0 1 y"}\n',
        encoding="utf-8",
    )
    assert guess_format(path) == "porcupine-kv"
    ops = read_history(path)
    assert [(o.f, o.key, o.output) for o in ops] == [("append", "4", None), ("get", "4", "x 0 1 y")]
    assert check(make_model("porcupine-kv"), ops).valid is True


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "mystery.bin"
    path.write_text("hello\n", encoding="utf-8")
    with pytest.raises(HistoryError, match="cannot tell the format"):
        read_history(path)


def test_edn_export_streamed_from_the_file_is_the_same_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from checkers.history import read_jsonl, write_edn_from_jsonl

    src = write_jsonl(tmp_path / "history.jsonl", RECORDS, tail='{"index": 10, "ti')
    with caplog.at_level(logging.WARNING):
        assert write_edn_from_jsonl(src, tmp_path / "streamed.edn") == len(RECORDS)
    assert "history.jsonl:11: ignoring truncated last line" in caplog.text
    write_edn(read_jsonl(src), tmp_path / "whole.edn")
    assert (tmp_path / "streamed.edn").read_text() == (tmp_path / "whole.edn").read_text()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    write_edn_from_jsonl(empty, tmp_path / "empty.edn")
    assert (tmp_path / "empty.edn").read_text() == "[]\n"


def test_edn_export_streamed_stops_at_a_corrupt_line_and_leaves_nothing(tmp_path: Path) -> None:
    from checkers.history import write_edn_from_jsonl

    src = write_jsonl(tmp_path / "history.jsonl", RECORDS[:2], tail='{"index": 2, "ti\n' + json.dumps(RECORDS[2]) + "\n")
    with pytest.raises(HistoryError, match=r"history\.jsonl:3: corrupt line"):
        write_edn_from_jsonl(src, tmp_path / "out.edn")
    assert not list(tmp_path.glob("out.edn*"))


@settings(max_examples=300, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=6,
))
def test_edn_record_text_is_edn_formats(value: Any) -> None:
    """The fast path for plain values writes exactly what edn_format writes."""
    from checkers import edn
    from checkers.history import to_edn_record

    assert to_edn_record({"value": value}) == "{:value " + edn.dumps(value) + "}"
