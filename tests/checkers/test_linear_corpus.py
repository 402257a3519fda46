"""Every file of the reference corpora gets the verdict its source project expects."""

from __future__ import annotations

import csv
from pathlib import Path

from checkers.history import read_history
from checkers.linear import check, make_model, prepare
from checkers.linear.frontier import FrontierSearch
from checkers.linear.search import Search


def test_whole_expected_table(corpora: Path) -> None:
    with (corpora / "expected.tsv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) >= 230, "expected.tsv looks truncated"
    wrong: list[str] = []
    for row in rows:
        ops = read_history(corpora / row["path"], row["format"])
        result = check(make_model(row["model"]), ops, timeout=60)
        expected = {"true": True, "false": False}[row["expected_linearizable"]]
        if result.valid is not expected:
            wrong.append(f"{row['path']}: expected {expected}, got {result.valid}")
        if result.valid is False:
            ce = result.counterexample
            assert ce is not None and ce["unplaceable"] and ce["message"], row["path"]
    assert not wrong, "\n".join(wrong)


def test_kv_unpartitioned_matches_partitioned(corpora: Path) -> None:
    # porcupine also checks c01 and c10 as one map
    for name, expected in (("c01-ok", True), ("c01-bad", False), ("c10-ok", True), ("c10-bad", False)):
        ops = read_history(corpora / "porcupine" / "kv" / f"{name}.txt", "porcupine-kv")
        assert check(make_model("porcupine-kv-map"), ops, timeout=60).valid is expected, name


def test_both_engines_alone_on_etcd_and_knossos(corpora: Path) -> None:
    """check() races the two searches; each must be right on its own too."""
    with (corpora / "expected.tsv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if "/kv/" not in r["path"]]
    wrong: list[str] = []
    for row in rows:
        model = make_model(row["model"])
        ops = prepare(model, read_history(corpora / row["path"], row["format"]))
        expected = row["expected_linearizable"] == "true"
        for engine in (Search, FrontierSearch):
            valid = all(engine(model, part).run() is None for part in model.partition(ops))
            if valid is not expected:
                wrong.append(f"{row['path']}: {engine.__name__} says {valid}")
    assert not wrong, "\n".join(wrong)
