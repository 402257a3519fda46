"""Randomized: histories of a simulated linearizable register are judged linearizable, and
the same histories with one read corrupted to a value no write produced are not."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checkers.history import ops_from_records, pair
from checkers.linear import check, make_model
from tests.support.linear_oracles import simulate

UNWRITTEN = 999


def corrupt_one_read(records: list[dict[str, Any]], rng: random.Random) -> bool:
    reads = [r for r in records if r["type"] == "ok" and r["f"] == "read"]
    if not reads:
        return False
    rng.choice(reads)["value"] = UNWRITTEN
    return True


CASES = st.tuples(
    st.integers(0, 2**32 - 1), st.integers(5, 40), st.integers(1, 6), st.booleans(),
    st.sampled_from((0.0, 0.1, 0.3)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CASES)
def test_simulated_register_histories(case: tuple[int, int, int, bool, float]) -> None:
    seed, n, procs, use_cas, crash = case
    records = simulate(seed, n, procs, use_cas, crash)
    model = make_model("cas-register(initial=nil)")
    assert check(model, ops_from_records(records), timeout=30).valid is True
    # porcupine's etcd semantics: the failed cas ops are kept as observations, still valid
    observed = pair(records, failed_cas_observed=True, use_time=True)
    assert check(model, observed, timeout=30).valid is True
    assume(corrupt_one_read(records, random.Random(seed)))
    result = check(model, ops_from_records(records), timeout=30)
    assert result.valid is False
    assert result.counterexample is not None
    assert check(model, pair(records, failed_cas_observed=True, use_time=True), timeout=30).valid is False
    # and by the search itself, not only by the quick refutation of an unwritten value
    assert check(model, ops_from_records(records), timeout=30, shortcuts=False).valid is False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CASES, st.integers(0, 3))
def test_zone_shortcut_agrees_with_the_search(case: tuple[int, int, int, bool, float], edits: int) -> None:
    """Reads/writes with distinct values: the zone test and the search give the same verdict,
    also on histories damaged by random edits of read values and times."""
    seed, n, procs, _, crash = case
    rng = random.Random(seed)
    records = simulate(seed, n, procs, False, crash, distinct=True)
    values = [r["value"] for r in records if r["f"] == "write"] + [None, UNWRITTEN]
    for _ in range(edits):
        reads = [r for r in records if r["f"] == "read" and r["type"] == "ok"]
        if reads:
            rng.choice(reads)["value"] = rng.choice(values)
        # a completion observed a little later (never past its process's next invocation)
        k = rng.randrange(len(records))
        if records[k]["type"] != "invoke":
            later = [r["time"] for r in records[k + 1:] if r["process"] == records[k]["process"]]
            records[k]["time"] = min([records[k]["time"] + rng.choice((1, 2)), *later])
    records.sort(key=lambda r: r["time"])
    model = make_model("cas-register(initial=nil)")
    ops = ops_from_records(records)
    fast = check(model, ops, timeout=30).valid
    slow = check(model, ops, timeout=30, shortcuts=False).valid
    assert fast == slow
    if not edits:
        assert fast is True
