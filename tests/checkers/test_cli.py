"""`faultline check`: verdicts, exit codes, the readable counterexample, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checkers.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_valid_history_exits_0(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(corpora / "porcupine/jepsen/etcd_002.log")]) == 0
    assert ": linearizable" in capsys.readouterr().out


def test_invalid_history_exits_1_with_a_counterexample(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = corpora / "knossos/cas-register/bad/bad-analysis.edn"
    assert main(["check", str(path), "--model", "cas-register(initial=0)"]) == 1
    out = capsys.readouterr().out
    assert "NOT linearizable" in out and "could not be placed next" in out and "=>" in out


def test_json_output(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = corpora / "porcupine/kv/c01-bad.txt"
    assert main(["check", str(path), "--format", "porcupine-kv", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and doc["model"] == "porcupine-kv"
    assert doc["counterexample"]["unplaceable"]


def test_timeout_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 22 concurrent writes (values repeat: no zone shortcut), then reads of 3 and of 4 after
    # all of them returned: refuting that takes every order of the writes
    lines = []
    for p in range(22):
        lines.append({"time": 0, "process": p, "type": "invoke", "f": "write", "value": p % 11})
    for p in range(22):
        lines.append({"time": 100 + p, "process": p, "type": "ok", "f": "write", "value": p % 11})
    for t, v in ((1000, 3), (1002, 4)):
        lines.append({"time": t, "process": 99, "type": "invoke", "f": "read", "value": None})
        lines.append({"time": t + 1, "process": 99, "type": "ok", "f": "read", "value": v})
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    assert main(["check", str(path), "--model", "cas-register(initial=0)", "--timeout", "0.3"]) == 2
    assert "unknown" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nonsense"], "model 'nonsense' unknown"),
        (["--format", "edn"], "not valid EDN"),
    ],
)
def test_bad_input_exits_3_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"process": 0, "type": "invoke", "f": "read", "time": 1}\n{"process": 0,\n', encoding="utf-8")
    assert main(["check", str(path), *args]) == 3
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_corrupt_middle_line_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"process": 0, "type": "invoke", "f": "read", "time": 1}\n{oops\n{"process": 0}\n',
                    encoding="utf-8")
    assert main(["check", str(path)]) == 3
    assert "history.jsonl:2: corrupt line" in capsys.readouterr().err


def test_missing_file_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.jsonl")]) == 3
    assert "cannot read" in capsys.readouterr().err


def test_through_the_faultline_command(corpora: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "check", str(corpora / "porcupine/jepsen/etcd_000.log")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "NOT linearizable" in proc.stdout


def test_run_folder_means_its_history_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "history.jsonl").write_text(
        '{"time": 1, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1}\n'
        '{"time": 2, "process": 0, "type": "ok", "f": "write", "key": "a", "value": 1}\n',
        encoding="utf-8",
    )
    assert main(["check", str(tmp_path)]) == 0
    assert "linearizable (model kv" in capsys.readouterr().out
