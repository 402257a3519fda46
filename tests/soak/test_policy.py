"""The soak's pure decisions: durations, seeds, rotation, keeping, pruning, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.campaign.soak_policy import (
    SoakError,
    StoredRun,
    compact_run,
    exit_code,
    keep_decision,
    parse_duration,
    parse_mix,
    prune_plan,
    rotation,
    run_seed,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("8h", 28800),
        ("30m", 1800),
        ("90s", 90),
        ("1h30m", 5400),
        ("45", 45),
        ("2.5m", 150),
        ("1d", 86400),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "8x", "8h junk", "-5m", "1h 30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(SoakError, match="--duration"):
        parse_duration(text)


def test_run_seeds_are_replayable_and_distinct() -> None:
    seeds = [run_seed(42, i) for i in range(1000)]
    assert seeds == [run_seed(42, i) for i in range(1000)]  # same master seed, same runs
    assert len(set(seeds)) == 1000
    assert seeds[:5] != [run_seed(43, i) for i in range(5)]


@given(st.integers(min_value=0, max_value=2**63), st.integers(min_value=0, max_value=10**6))
def test_run_seed_is_a_valid_config_seed(master: int, index: int) -> None:
    assert 1 <= run_seed(master, index) < 2**31


def test_rotation_covers_every_config_and_mix_pair() -> None:
    configs = [Path("a.yaml"), Path("b.yaml")]
    mixes = [["partition"], ["kill", "pause"], []]
    slots = [rotation(configs, mixes, i) for i in range(6)]
    assert {(s.config.name, s.mix) for s in slots} == {
        (c, tuple(m)) for c in ("a.yaml", "b.yaml") for m in mixes
    }
    assert [s.config.name for s in slots[:4]] == ["a.yaml", "b.yaml", "a.yaml", "b.yaml"]
    assert rotation(configs, [], 3).mix is None  # no mixes: each config's own faults


def test_rotation_without_configs_is_an_error() -> None:
    with pytest.raises(SoakError):
        rotation([], [], 0)


def test_parse_mix() -> None:
    assert parse_mix("partition, kill") == ["partition", "kill"]
    assert parse_mix("none") == []
    with pytest.raises(SoakError, match="--mix"):
        parse_mix(" , ")


@pytest.mark.parametrize(
    ("keep", "verdict", "decision"),
    [
        ("passing", "valid", "compact"),
        ("failing", "valid", "remove"),
        ("all", "valid", "full"),
        ("passing", "anomaly", "full"),
        ("failing", "unknown", "full"),
        ("failing", "infra", "full"),
    ],
)
def test_keep_decision(keep: str, verdict: str, decision: str) -> None:
    assert keep_decision(keep, verdict) == decision


def test_keep_decision_rejects_unknown_mode() -> None:
    with pytest.raises(SoakError, match="--keep"):
        keep_decision("some", "valid")


def _run(name: str, size: int, passing: bool) -> StoredRun:
    return StoredRun(Path("/s/t") / name, size, name, passing)


def test_prune_plan_removes_oldest_passing_first_and_never_failing() -> None:
    runs = [
        _run("20260101T000003-3", 100, True),
        _run("20260101T000001-1", 100, True),
        _run("20260101T000002-2", 500, False),
        _run("20260101T000004-4", 100, True),
    ]
    # 800 bytes, bound 700: the oldest passing run (000001) is enough; 650 needs two
    assert prune_plan(runs, 700) == [Path("/s/t/20260101T000001-1")]
    assert prune_plan(runs, 650) == [Path("/s/t/20260101T000001-1"), Path("/s/t/20260101T000003-3")]
    # bound 100: every passing run goes, the failing one stays though still above the bound
    assert prune_plan(runs, 100) == [Path(f"/s/t/20260101T00000{i}-{i}") for i in (1, 3, 4)]
    assert prune_plan(runs, 10_000) == []


def test_prune_plan_protects_the_latest_run() -> None:
    runs = [_run("20260101T000001-1", 100, True), _run("20260101T000002-2", 100, True)]
    assert prune_plan(runs, 0, protect=[Path("/s/t/20260101T000001-1")]) == [
        Path("/s/t/20260101T000002-2")
    ]


@given(st.lists(st.tuples(st.integers(0, 1000), st.booleans()), max_size=20), st.integers(0, 20000))
def test_prune_plan_properties(specs: list[tuple[int, bool]], limit: int) -> None:
    runs = [_run(f"20260101T{i:06d}-{i}", size, ok) for i, (size, ok) in enumerate(specs)]
    plan = prune_plan(runs, limit)
    by_path = {r.path: r for r in runs}
    assert all(by_path[p].passing for p in plan)
    left = sum(r.size for r in runs) - sum(by_path[p].size for p in plan)
    passing_left = [r for r in runs if r.passing and r.path not in plan]
    # either within the bound, or nothing passing left to prune
    assert left <= limit or not passing_left
    # oldest first: every pruned run is older than every passing run kept
    if plan and passing_left:
        assert max(by_path[p].stamp for p in plan) < min(r.stamp for r in passing_left)


def test_compact_run_keeps_the_summary_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "nodes" / "n1").mkdir(parents=True)
    for name in (
        "test.yaml",
        "results.json",
        "report.html",
        "history.jsonl",
        "history.edn",
        "controller.log",
    ):
        (run / name).write_text("x" * 10)
    (run / "nodes" / "n1" / "events.jsonl").write_text("y" * 100)
    freed = compact_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["report.html", "results.json", "test.yaml"]
    assert freed == 130


@pytest.mark.parametrize(
    ("counts", "code"),
    [
        ((0, 0, 0), 0),
        ((1, 0, 0), 1),
        ((1, 2, 3), 1),
        ((0, 1, 0), 2),
        ((0, 1, 4), 2),
        ((0, 0, 1), 3),
    ],
)
def test_exit_code(counts: tuple[int, int, int], code: int) -> None:
    assert exit_code(*counts) == code
