"""checkers.opcolumns: client operations read as columns pair exactly as `pair_ops` pairs the
records (lenient for the report, strict for stats), also across reader processes, and the
stats checker's entry from columns is the one from records, key order included."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from checkers import opcolumns
from checkers.jsonl_blocks import Unusual
from checkers.opcolumns import RecordColumns, pair_columns, read_op_columns
from checkers.rundata import HistoryFormatError, Op, StoredRun, pair_ops, read_records
from checkers.stats import StatsChecker, check, check_columns

FS = ("read", "write", "cas", "delete")


def history(rng: random.Random, n: int, odd: bool = False) -> list[dict[str, Any]]:
    """Invocations and completions of a few processes: some never completed, some invoked
    again while open, completions nobody invoked, nemesis records between them. `odd` adds
    what only the lenient pairing takes (missing fields, other types, times not numbers)."""
    records: list[dict[str, Any]] = []
    open_ops: dict[Any, Any] = {}
    t = 0
    for _ in range(n):
        t += rng.choice((0, 1, 1000, 123_457))
        roll = rng.random()
        if roll < 0.1:
            rec: dict[str, Any] = {"process": "nemesis", "type": rng.choice(("info", "invoke")),
                                   "f": rng.choice(("start-partition", "stop-partition", "kill", 7)),
                                   "value": rng.choice((None, {"groups": [["n1"], ["n2"]]}))}
        else:
            p = rng.choice((0, 1, 2, 3, "w", 2.0, 5))
            if p in open_ops and rng.random() < 0.85:
                rec = {"process": p, "type": rng.choice(("ok", "ok", "fail", "info")), "f": open_ops.pop(p)}
            elif rng.random() < 0.05:  # a completion nobody invoked
                rec = {"process": p, "type": rng.choice(("ok", "fail", "info")), "f": rng.choice(FS)}
            else:
                f = open_ops[p] = rng.choice((*FS, 3))
                rec = {"process": p, "type": "invoke", "f": f}
            rec["value"] = rng.choice((None, 1, [1, 2], "x"))
            if rng.random() < 0.7:
                rec["key"] = rng.choice(("k1", "k2"))
            if rng.random() < 0.3:
                rec["node"] = "n1"
            if rng.random() < 0.2:
                rec["error"] = "timeout"
        rec["time"] = t + 0.75 if rng.random() < 0.1 else t
        if odd and rng.random() < 0.15:
            field = rng.choice(("process", "type", "f", "time"))
            choice = rng.random()
            if choice < 0.4:
                del rec[field]
            elif field == "type":
                rec["type"] = "weird"
            else:
                rec[field] = rng.choice((None, True, "12"))
        records.append(rec)
    return records


def write(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def facts(ops: list[Op]) -> list[tuple[Any, ...]]:
    return [(o.process, type(o.process), o.f, o.key, o.value, o.output, o.type, o.invoke, o.complete, o.error,
             o.node) for o in ops]


@pytest.mark.parametrize("seed", range(30))
def test_lenient_pairing_is_pair_ops(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = write(tmp_path / "history.jsonl", history(rng, rng.randrange(0, 300), odd=seed % 2 == 1))
    records = read_records(path, tolerant=True)
    unmatched: list[Any] = []
    expected = pair_ops(records, unmatched=unmatched)
    for cols in (read_op_columns(path), pair_columns(RecordColumns.of_records(records))):
        assert facts(cols.operations(range(len(cols)))) == facts(expected)
        assert cols.invoke.tolist() == [o.invoke for o in expected]
        assert [c for c, d in zip(cols.complete.tolist(), cols.completed.tolist(), strict=True) if d] == \
            [o.complete for o in expected if o.complete is not None]
        assert cols.records.records(cols.unmatched) == [{k: v for k, v in r.items() if k != "_line"}
                                                        for r in unmatched] or cols.records.source is not None
        assert len(cols.nemesis) == sum(1 for r in records if r.get("process") == "nemesis")


@pytest.mark.parametrize("seed", range(30))
def test_stats_from_columns_are_the_stats_from_records(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    records = history(rng, rng.randrange(0, 400))
    path = write(tmp_path / "history.jsonl", records, tail='{"process": 1, "ty' if seed % 3 == 0 else "")
    old = check(read_records(path)).to_json()
    new = check_columns(read_op_columns(path, strict=True)).to_json()
    assert json.dumps(new) == json.dumps(old)  # the same text in results.json, key order included
    assert json.dumps(StatsChecker().check(StoredRun(tmp_path)).to_json()) == json.dumps(old)


def test_worker_processes_give_the_same_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opcolumns, "BLOCK", 4096)  # many blocks per range
    rng = random.Random(7)
    path = write(tmp_path / "history.jsonl", history(rng, 3000, odd=True))
    alone, shared = read_op_columns(path, workers=1), read_op_columns(path, workers=3)
    for name in ("inv", "done", "outcome", "f", "unmatched", "nemesis"):
        assert getattr(shared, name).tolist() == getattr(alone, name).tolist()
    assert facts(shared.operations(range(len(shared)))) == facts(alone.operations(range(len(alone))))
    assert shared.records.offset.tolist() == alone.records.offset.tolist()


def test_odd_records_are_unusual_for_stats_which_then_reads_records(tmp_path: Path) -> None:
    path = write(tmp_path / "history.jsonl", [{"time": 1, "process": 1, "type": "invoke"}])
    with pytest.raises(Unusual):
        read_op_columns(path, strict=True)
    with pytest.raises(HistoryFormatError, match="lacks field 'f'"):
        StatsChecker().check(StoredRun(tmp_path))
    write(path, [{"time": 1, "process": 1, "type": "weird", "f": "read"}])
    with pytest.raises(HistoryFormatError, match="unknown type 'weird'"):
        StatsChecker().check(StoredRun(tmp_path))


def test_a_torn_last_line_is_noted_and_a_bad_line_before_it_is_unusual(tmp_path: Path) -> None:
    recs = [{"time": 1, "process": 1, "type": "invoke", "f": "read"}, {"time": 2, "process": 1, "type": "ok",
                                                                         "f": "read", "value": 3}]
    path = write(tmp_path / "history.jsonl", recs, tail='{"time": 3, "proc')
    cols = read_op_columns(path)
    assert cols.records.torn_line == 3 and len(cols) == 1
    assert facts(cols.operations([0])) == [(1, int, "read", None, None, 3, "ok", 1, 2, None, None)]
    path.write_text('{"time": 1, "pro\n' + json.dumps(recs[0]) + "\n", encoding="utf-8")
    with pytest.raises(Unusual, match="bad line before"):
        read_op_columns(path)
