"""The live history survives a controller killed mid-write; the store links latest."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from checkers.rundata import read_records
from harness.run.history import HistoryWriter
from harness.run.store import create_run


def test_lines_are_on_disk_before_close(tmp_path: Path) -> None:
    w = HistoryWriter(tmp_path / "h.jsonl")
    w.append({"process": 0, "type": "invoke", "f": "read", "value": None})
    # no close, no flush call: another reader sees the line already
    ops = read_records(tmp_path / "h.jsonl")
    assert ops[0]["index"] == 0 and ops[0]["f"] == "read" and isinstance(ops[0]["time"], int)
    w.close()


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    w = HistoryWriter(path)
    for i in range(5):
        w.append({"process": 0, "type": "invoke" if i % 2 == 0 else "ok", "f": "write", "value": i})
    w.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])  # truncated mid-line, as by a SIGKILL
    ops = read_records(path)
    assert [op["value"] for op in ops] == [0, 1, 2, 3]


def test_concurrent_appends_keep_lines_whole_and_indexed(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    w = HistoryWriter(path)

    def work(p: int) -> None:
        for i in range(500):
            w.append({"process": p, "type": "invoke", "f": "write", "value": i})

    threads = [threading.Thread(target=work, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2000
    assert [json.loads(line)["index"] for line in lines] == list(range(2000))


def test_store_latest_points_at_newest_run(tmp_path: Path) -> None:
    a = create_run(tmp_path, "t", 1)
    b = create_run(tmp_path, "t", 1)
    a.close_log()
    b.close_log()
    assert a.path != b.path
    assert (tmp_path / "latest").resolve() == b.path.resolve()
    assert (b.path / "controller.log").exists() and (b.path / "nodes").is_dir()
