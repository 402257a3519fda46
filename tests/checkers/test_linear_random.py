"""Randomized: histories of a simulated linearizable register are judged linearizable, and
the same histories with one read corrupted to a value no write produced are not."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from checkers.history import ops_from_records, pair
from checkers.linear import check, make_model

UNWRITTEN = 999


def simulate(
    seed: int, n_ops: int, processes: int, use_cas: bool, crash_rate: float, distinct: bool = False
) -> list[dict[str, Any]]:
    """A register that applies each op atomically at a random moment between its invocation
    and its completion; crashed ops (info) may apply later or never."""
    rng = random.Random(seed)
    value: Any = None
    time = 0
    records: list[dict[str, Any]] = []
    idle = list(range(processes))
    next_process = processes
    pending: dict[int, dict[str, Any]] = {}  # process -> op (applied or not)
    crashed: list[dict[str, Any]] = []  # info ops not applied yet
    started = 0

    def apply(o: dict[str, Any]) -> None:
        nonlocal value
        if o["f"] == "read":
            o["out"] = value
        elif o["f"] == "write":
            value = o["value"]
        else:
            o["swapped"] = value == o["value"][0]
            if o["swapped"]:
                value = o["value"][1]
        o["applied"] = True

    for _ in range(n_ops * 6):
        time += rng.choice((0, 1, 1, 2))  # equal timestamps happen
        choice = rng.random()
        if choice < 0.3 and idle and started < n_ops:
            p = idle.pop(rng.randrange(len(idle)))
            f = rng.choice(("read", "write", "cas") if use_cas else ("read", "write"))
            v: Any = None if f == "read" else rng.randrange(5) if f == "write" else [rng.randrange(5), rng.randrange(5)]
            if distinct and f == "write":
                v = 100 + started
            o = {"process": p, "f": f, "value": v, "applied": False}
            pending[p] = o
            started += 1
            records.append({"time": time, "process": p, "type": "invoke", "f": f, "value": v})
        elif choice < 0.6 and pending:
            o = rng.choice(list(pending.values()))
            if not o["applied"]:
                apply(o)
        elif choice < 0.9 and pending:
            p = rng.choice(list(pending))
            o = pending[p]
            if rng.random() < crash_rate:
                del pending[p]
                records.append({"time": time, "process": p, "type": "info", "f": o["f"], "value": o["value"]})
                if not o["applied"]:
                    crashed.append(o)
                idle.append(next_process)
                next_process += 1
            elif o["applied"]:
                del pending[p]
                idle.append(p)
                if o["f"] == "read":
                    records.append({"time": time, "process": p, "type": "ok", "f": "read", "value": o["out"]})
                else:
                    done = "ok" if o["f"] == "write" or o["swapped"] else "fail"
                    records.append({"time": time, "process": p, "type": done, "f": o["f"], "value": o["value"]})
        elif crashed and rng.random() < 0.5:
            apply(crashed.pop(rng.randrange(len(crashed))))
    return records


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
