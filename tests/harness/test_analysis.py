"""A run's analysis of a history with nothing to check, or one no checker can read: it
finishes, says "unknown" with the reason, never "valid", and loses nothing recorded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from harness.run.analysis import analyze

WRITE = '{"time": 1, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1}'


@pytest.mark.parametrize(
    ("history", "error"),
    [
        ('{"time": 1, "process": "nemesis", "type": "info", "f": "kill", "value": null}\n', "no client operations"),
        (WRITE.replace('"value": 1', '"value": ' + "[" * 1500 + "]" * 1500) + "\n" + WRITE + "\n",
         "history.jsonl:1: corrupt line: nested too deeply"),
        (WRITE.replace('"time": 1', '"time": NaN') + "\n", "history.jsonl:1: corrupt line: NaN is not a JSON number"),
    ],
    ids=["nemesis only", "nested 1500 deep", "NaN time"],
)
def test_analysis_without_checkable_operations_is_unknown(tmp_path: Path, history: str, error: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    test = {"name": "t", "seed": 1, "nodes": ["n1"], "workload": "register", "db": "raftkv"}
    (run_dir / "test.yaml").write_text(yaml.safe_dump(test))
    (run_dir / "history.jsonl").write_text(history, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        results = analyze(run_dir, write_edn=True)
    lin = results.checkers["linearizability"]
    assert lin.valid == "unknown" and error in lin.details["error"], lin
    assert results.valid != True  # noqa: E712 (True, not just truthy)
    assert json.loads((run_dir / "results.json").read_text())["checkers"]["linearizability"]["valid"] == "unknown"
    assert (run_dir / "history.jsonl").read_text(encoding="utf-8") == history


OPS = (
    '{"time": 1, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1}\n'
    '{"time": 2, "process": 0, "type": "ok", "f": "write", "key": "a", "value": 1}\n'
)
FINAL_READ = (
    '{"time": 3, "process": 1, "type": "invoke", "f": "read", "key": "a", "value": null, "final": true}\n'
    '{"time": 4, "process": 1, "type": "ok", "f": "read", "key": "a", "value": 1, "final": true, "node": "n1"}\n'
)


@pytest.mark.parametrize(
    ("recovered", "history", "lost_writes"),
    [
        (False, OPS, None),  # interrupted, or its controller died: the final reads never came
        (True, OPS, "unknown"),  # recovery ran and no final read succeeded: not judged, said so
        (True, OPS + FINAL_READ, True),
    ],
    ids=["ended before its final reads", "final reads failed", "final reads"],
)
def test_lost_writes_are_judged_only_in_runs_that_reached_their_final_reads(
        tmp_path: Path, recovered: bool, history: str, lost_writes: object) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    test = {"name": "t", "seed": 1, "nodes": ["n1"], "workload": "kv", "db": "raftkv"}
    (run_dir / "test.yaml").write_text(yaml.safe_dump(test))
    (run_dir / "history.jsonl").write_text(history, encoding="utf-8")
    if recovered:
        (run_dir / "recovery.json").write_text(json.dumps({"valid": True, "leader": "n1", "elapsed_s": 0.1}))
    results = analyze(run_dir, write_edn=False)
    entry = results.checkers.get("lost-writes")
    assert (entry.valid if entry is not None else None) == lost_writes
    assert results.checkers["linearizability"].valid is True
