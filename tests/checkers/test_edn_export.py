"""checkers.edn_export: history.edn written by reader processes is the text the one-core
export writes, and anything unusual is left to it (same errors, nothing left behind)."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest

from checkers import edn_export
from checkers.edn_export import export_edn
from checkers.history import HistoryError, write_edn_from_jsonl


def records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        rec: dict[str, Any] = {"index": i, "time": i * 1000, "process": rng.choice((0, 1, "nemesis")),
                               "type": rng.choice(("invoke", "ok", "fail", "info")), "f": rng.choice(("read", "cas")),
                               "value": rng.choice((None, 3, [1, 2], "é\"x", {"groups": [["n1"], ["n2"]]}, 2.5))}
        if rng.random() < 0.3:
            rec["error"] = "timeout"
        out.append(rec)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_same_text_as_the_one_core_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int,
                                              caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(edn_export, "BLOCK", 512)  # many blocks per range
    rng = random.Random(seed)
    lines = [json.dumps(r) for r in records(rng, rng.randrange(0, 300))]
    for _ in range(rng.randrange(4)):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(("", "  ")))
    tail = rng.choice(("", '{"index": 9999, "ti'))
    src = tmp_path / "history.jsonl"
    src.write_text("\n".join(lines) + "\n" + tail, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        n = write_edn_from_jsonl(src, tmp_path / "one.edn")
        monkeypatch.setattr(edn_export, "write_edn_from_jsonl", None)  # not left to the one-core export
        assert export_edn(src, tmp_path / "many.edn", workers=3) == n
    assert (tmp_path / "many.edn").read_text(encoding="utf-8") == (tmp_path / "one.edn").read_text(encoding="utf-8")
    assert caplog.text.count("ignoring truncated last line") == (2 if tail else 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl", "many.edn", "one.edn"]


def test_a_corrupt_line_is_the_one_core_export_error_and_leaves_nothing(tmp_path: Path) -> None:
    lines = [json.dumps(r) for r in records(random.Random(1), 200)]
    lines[20] = lines[20][:-3]
    src = tmp_path / "history.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(HistoryError, match=r"history\.jsonl:21: corrupt line"):
        export_edn(src, tmp_path / "out.edn", workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.jsonl"]
