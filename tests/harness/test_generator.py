"""Generator and nemesis schedule: deterministic from the seed; grudges have the right shape."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.nemesis.schedule import fault_schedule
from harness.net import grudges
from harness.run.config import validate
from harness.run.generator import ClientGenerator, op_sequence
from workloads import get


@pytest.mark.parametrize("workload", ["kv", "register"])
def test_same_seed_same_ops(workload: str) -> None:
    opts = validate({})["workload_opts"]
    make = get(workload).make
    assert op_sequence(make, 42, opts, 500) == op_sequence(make, 42, opts, 500)
    assert op_sequence(make, 42, opts, 500) != op_sequence(make, 43, opts, 500)


def test_same_seed_same_faults() -> None:
    nem = validate({"nemesis": {"faults": ["partition", "kill", "pause", "transfer"], "schedule": "random"}})["nemesis"]
    a = fault_schedule(nem, 9, 5.0, 120.0)
    assert a == fault_schedule(nem, 9, 5.0, 120.0)
    assert a != fault_schedule(nem, 10, 5.0, 120.0)
    assert all(5.0 <= e.at < 120.0 and e.at + e.duration <= 120.0 for e in a)
    assert all(b.at >= e.at + e.duration for e, b in zip(a, a[1:], strict=False))  # one fault at a time


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 300))
def test_kv_values_unique_per_key(seed: int, n: int) -> None:
    opts = validate({})["workload_opts"]
    seen: set[tuple[str, int]] = set()
    for op in op_sequence(get("kv").make, seed, opts, n):
        if op["f"] in ("write", "cas"):
            v = op["value"] if op["f"] == "write" else op["value"][1]
            assert (op["key"], v) not in seen
            seen.add((op["key"], v))


def test_keys_rotate_per_group() -> None:
    opts = {**validate({})["workload_opts"], "keys": 2, "ops_per_key": 5}
    ops = op_sequence(get("kv").make, 1, opts, 30)
    assert {o["key"] for o in ops[:10]} <= {"k0", "k1"}
    assert {o["key"] for o in ops[10:20]} <= {"k2", "k3"}


def test_rate_limit_paces_ops() -> None:
    stream = get("kv").make(1, validate({})["workload_opts"])
    gen = ClientGenerator(stream, rate=100.0)
    start = time.monotonic()
    gen.run_until(start + 0.3)
    count = 0
    while gen.next_op() is not None and count < 1000:
        count += 1
    # slots every 10 ms from the start: at most 30 fit before the deadline (fewer if starved)
    assert 20 <= count <= 30
    assert time.monotonic() - start >= 0.28


@pytest.mark.parametrize("n", [3, 5, 7])
def test_grudge_shapes(n: int) -> None:
    nodes = [f"n{i}" for i in range(1, n + 1)]
    rng = random.Random(1)
    g, groups = grudges.halves(nodes, rng)
    assert sorted(groups[0] + groups[1]) == sorted(nodes)
    assert all(g[a] == set(groups[1]) for a in groups[0])
    g, _ = grudges.isolate(nodes, "n2")
    assert g["n2"] == set(nodes) - {"n2"} and all(g[x] == {"n2"} for x in nodes if x != "n2")
    g, views = grudges.majorities_ring(nodes, rng)
    majority = n // 2 + 1
    assert all(len(v) >= majority for v in views.values())
    assert len({tuple(v) for v in views.values()}) == n  # nobody sees the same majority
    g, (left, right) = grudges.bridge(nodes, rng)
    middle = set(left) & set(right)
    assert len(middle) == 1 and g[middle.pop()] == set()
