"""checkers.results: results.json read back, and the one-line message of a verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from checkers.result import CheckResult
from checkers.results import Results, ResultsError

LIN_INVALID = {
    "valid": False,
    "counterexample": {
        "ops": [{"id": 1, "invoke": 1_000_000_000, "complete": 2_000_000_000},
                {"id": 2, "invoke": 3_000_000_000, "complete": 4_500_000_000}],
        "unplaceable": [2],
        "message": "read() -> 3 cannot be linearized",
    },
}
SAFETY_INVALID = {
    "valid": False,
    "violations": [
        {"kind": "durability", "message": "n2 lost its vote", "ts": 1000.0 + 12.5},
        {"kind": "one-vote-per-term", "message": "n2 voted\ntwice", "ts": 1000.0 + 14.0},
    ],
}
STATS = {"valid": True, "throughput": 61.5, "ops": {"read": {"ok": 5, "fail": 1, "info": 0}, "cas": {"ok": 2}}}


def results(**checkers: Any) -> Results:
    valid = [c["valid"] for c in checkers.values()]
    overall = False if False in valid else ("unknown" if any(v is not True for v in valid) else True)
    return Results.of({"valid": overall, "checkers": {k.replace("_", "-"): v for k, v in checkers.items()}})


def test_an_invalid_run() -> None:
    r = results(linearizability=LIN_INVALID, raft_safety=SAFETY_INVALID, stats=STATS)
    assert r.valid is False and list(r.checkers) == ["linearizability", "raft-safety", "stats"]
    assert r.anomaly_kinds() == ["linearizability", "raft-safety:durability", "raft-safety:one-vote-per-term"]
    assert r.caught_by() == ["linearizability", "raft-safety"] and r.unknown_checkers() == []
    assert r.throughput == 61.5 and r.op_count() == 8
    # the unplaceable op completed 4.5 s into the load; the first violation 12.5 s after boot
    assert r.detection_s(1000.0) == 4.5
    assert results(raft_safety=SAFETY_INVALID).detection_s(1000.0) == 12.5
    assert results(raft_safety=SAFETY_INVALID).detection_s(None) is None
    assert r.message() == "linearizability: read() -> 3 cannot be linearized"
    assert results(raft_safety=SAFETY_INVALID).message() == "raft-safety: n2 lost its vote (+1 more)"


def test_valid_and_unknown_runs() -> None:
    ok = results(linearizability={"valid": True}, stats=STATS)
    assert ok.valid is True and ok.anomaly_kinds() == [] and ok.caught_by() == []
    assert ok.message() == "valid"
    unk = results(linearizability={"valid": "unknown", "error": "timed out after 120s"}, stats=STATS)
    assert unk.valid == "unknown" and unk.unknown_checkers() == ["linearizability"]
    assert unk.message() == "linearizability: timed out after 120s"
    assert results(stats={"valid": True}).throughput is None and results().op_count() is None


def test_an_anomaly_is_the_message_before_an_unknown() -> None:
    r = results(linearizability={"valid": "unknown"}, raft_safety={"valid": False})
    assert r.message() == "raft-safety: invalid"
    assert results(linearizability={"valid": "unknown"}).message() == "linearizability: unknown"
    assert Results.of({"valid": "unknown", "checkers": []}).message() == "unknown"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"valid": True, "message": "fine"}, None),
        ({"valid": False, "message": "said  so\n"}, "said so"),
        ({"valid": "unknown", "error": "checker crashed: KeyError"}, "checker crashed: KeyError"),
        (LIN_INVALID, "read() -> 3 cannot be linearized"),
        (SAFETY_INVALID, "n2 lost its vote (+1 more)"),
        ({"valid": False, "violations": [{"kind": "leader-append-only"}]}, "leader-append-only"),
        ({"valid": False, "violations": "garbled"}, None),
        # an unknown verdict: a counterexample is not why; the parts that gave up are
        ({"valid": "unknown", "counterexample": {"message": "m"},
          "partitions": [{"key": f"k{i}", "valid": "unknown", "reason": "time limit"} for i in range(5)]
          + [{"key": "k9", "valid": True}]},
         "k0: time limit; k1: time limit; k2: time limit (+2 more)"),
        ({"valid": "unknown", "stats": {"message": "no node events to check"}}, "no node events to check"),
        ({"valid": "maybe"}, None),
        ("not an object", "entry is not a JSON object: str"),
    ],
)
def test_checker_message(entry: Any, message: str | None) -> None:
    assert CheckResult.from_json("c", entry).message() == message


def test_entries_are_typed_whatever_the_file_holds() -> None:
    r = Results.of({"valid": 1, "checkers": {"a": {"valid": "yes"}, "b": [], "c": {"valid": False, "x": 1}}})
    assert r.valid == "unknown"
    assert [(c.name, c.valid) for c in r.checkers.values()] == [("a", "unknown"), ("b", "unknown"), ("c", False)]
    assert r.checkers["c"].details == {"x": 1} and r.checker("d") is None
    assert Results.of({"checkers": "x"}).checkers == {}


def test_load_missing_corrupt_and_good_files(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match=r"results\.json: missing"):
        Results.load(tmp_path)
    path = tmp_path / "results.json"
    path.write_text('{"valid": tr')
    with pytest.raises(ResultsError, match=r"results\.json: not valid JSON \(Expecting value at line 1\)"):
        Results.load(path)
    path.write_text("[1]")
    with pytest.raises(ResultsError, match=r"results\.json: top level is not an object"):
        Results.load(path)
    doc = {"valid": True, "checkers": {"stats": STATS}}
    path.write_text(json.dumps(doc))
    loaded = Results.load(tmp_path)
    assert loaded.valid is True and loaded.raw == doc and loaded.throughput == 61.5
    assert loaded.checkers["stats"].to_json() == STATS
