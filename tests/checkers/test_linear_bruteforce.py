"""The search against brute force on tiny random histories (most of them not linearizable):
every pruning trick (dominated info sets, read-only ops placed at once, interchangeable info
ops, the kv look-ahead, the zone test) must leave the verdict unchanged."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.linear import UNKNOWN, Operation, check, make_model, prepare
from checkers.linear.frontier import FrontierSearch
from checkers.linear.search import Search
from tests.support.linear_oracles import brute_force


def random_history(rng: random.Random, n: int, kind: str) -> list[Operation]:
    ops: list[Operation] = []
    for i in range(n):
        start = rng.randrange(8)
        end = start + rng.randrange(4)
        typ = "info" if rng.random() < 0.25 else "ok"
        if kind.startswith("register"):
            f = rng.choice(("read", "write", "cas"))
            value: Any = None if f == "read" else rng.randrange(3) if f == "write" else (rng.randrange(3), rng.randrange(3))
            out: Any = rng.choice((None, 0, 1, 2)) if f == "read" else rng.choice((True, False)) if f == "cas" else None
            if kind == "register-jepsen" and f == "cas":
                out = True  # failed cas dropped: the info-op simplification applies
        else:
            f = rng.choice(("get", "put", "append", "append"))
            value = None if f == "get" else rng.choice(("a", "b", "ab"))
            out = rng.choice(("", "a", "b", "ab", "ba", "aab", "abb")) if f == "get" else None
        if typ == "info":
            if f in ("read", "get"):
                typ = "ok"
            else:
                out = UNKNOWN
        ops.append(Operation(id=i, process=i, f=f, value=value, output=out, invoke=start,
                             complete=end if typ == "ok" else None, type=typ,  # type: ignore[arg-type]
                             key="k", call_pos=float(start),
                             return_pos=float(end) if typ == "ok" else float("inf")))
    return ops


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from(("register", "register-jepsen", "kv")))
def test_search_matches_brute_force(seed: int, n: int, kind: str) -> None:
    rng = random.Random(seed)
    ops = random_history(rng, n, kind)
    model = make_model("porcupine-kv" if kind == "kv" else "cas-register(initial=nil)")
    expected = brute_force(model, ops)
    assert check(model, ops).valid is expected
    assert check(model, ops, shortcuts=False).valid is expected
    kept = prepare(model, ops)
    assert (Search(model, kept).run() is None) is expected
    assert (FrontierSearch(model, kept).run() is None) is expected
