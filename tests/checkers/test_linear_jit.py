"""The register engine (checkers/linear/jit.py) and the columnar partitions it reads
(checkers/linear/registers.py): the engine alone against brute force and against the two
searches, the columnar prepare/partition/simplify against the models' own."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.history import ops_from_records, pair
from checkers.linear import (
    UNKNOWN,
    Model,
    Operation,
    OperationError,
    check,
    jit,
    make_model,
    prepare,
    registers,
)
from checkers.linear.frontier import FrontierSearch
from checkers.linear.search import Search, SearchLimit
from checkers.linear.table import OpTable
from tests.support.linear_oracles import brute_force, simulate

MODELS = ("cas-register(initial=nil)", "cas-register(initial=0)", "kv")


def register_history(rng: random.Random, n: int, values: int, info_rate: float, keys: int = 1,
                     span: int = 8) -> list[Operation]:
    """Random register ops (read, write, cas, delete) on few values, many of them crashed."""
    ops: list[Operation] = []
    for i in range(n):
        start = rng.randrange(span)
        end = start + rng.randrange(4)
        f = rng.choice(("read", "read", "write", "cas", "cas", "delete"))
        value: Any = None
        out: Any = None
        if f == "write":
            value = rng.randrange(values)
        elif f == "cas":
            value = (rng.randrange(values), rng.randrange(values))
            out = rng.random() < 0.8  # True: swapped; False: compared and not swapped (etcd)
        elif f == "read":
            out = rng.choice([None, *range(values)])
        typ = "info" if f != "read" and rng.random() < info_rate else "ok"
        if typ == "info":
            out = UNKNOWN
        ops.append(Operation(id=i, process=i, f=f, value=value, output=out, invoke=start,
                             complete=end if typ == "ok" else None, type=typ,  # type: ignore[arg-type]
                             key=f"k{rng.randrange(keys)}", call_pos=float(start),
                             return_pos=float(end) if typ == "ok" else float("inf")))
    return ops


def engine_verdicts(model: Model, ops: list[Operation]) -> list[bool | None]:
    """Per partition: True/False from the engine alone, None where it does not apply."""
    out: list[bool | None] = []
    for part in registers.partitions(model, OpTable.from_operations(ops)):
        engine_input = part.engine_input()
        out.append(None if engine_input is None else jit.check_register(engine_input) is None)
    return out


#: The engine's first pass as shipped, greedy (one configuration, one chain: it loses its
#: way often, so the exact pass runs often), and exact from the start.
TUNINGS = {"shipped": (jit.BEAM, jit.CHAINS_IN_BEAM), "greedy": (1, 1), "exact": (10**9, None)}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 7), st.sampled_from(MODELS), st.sampled_from((0.2, 0.5)),
       st.sampled_from((8, 30)), st.sampled_from(sorted(TUNINGS)))
def test_engine_matches_brute_force(
    seed: int, n: int, spec: str, info_rate: float, span: int, tuning: str
) -> None:
    """span 8: everything overlaps; span 30: many ops alone (the engine's fast path)."""
    rng = random.Random(seed)
    model = make_model(spec)
    ops = register_history(rng, n, values=3, info_rate=info_rate, keys=2 if spec == "kv" else 1, span=span)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jit, "BEAM", TUNINGS[tuning][0])
        mp.setattr(jit, "CHAINS_IN_BEAM", TUNINGS[tuning][1])
        verdicts = engine_verdicts(model, ops)
        assert None not in verdicts
        for part in model.partition(prepare(model, ops)):
            expected = brute_force(model, part)
            (verdict,) = engine_verdicts(model, part)
            assert verdict is expected
        assert check(model, ops).valid is all(verdicts)


def _op(i: int, f: str, value: Any, out: Any, start: int, end: int | None) -> Operation:
    """An op of process i; end None: crashed (info)."""
    return Operation(id=i, process=i, f=f, value=value, output=UNKNOWN if end is None else out,
                     invoke=start, complete=end, type="ok" if end is not None else "info",
                     call_pos=float(start), return_pos=float("inf") if end is None else float(end))


@pytest.mark.parametrize(
    "ops, expected",
    [
        # a read explained by a crashed write, then a crashed cas from it (no crashed write of 2)
        ([_op(0, "write", 1, None, 0, None), _op(1, "cas", (1, 2), None, 0, None),
          _op(2, "write", 3, None, 1, 2), _op(3, "read", None, 2, 5, 6)], True),
        # a run of crashed cas from the current state
        ([_op(0, "write", 1, None, 0, 1), _op(1, "cas", (1, 2), None, 2, None),
          _op(2, "cas", (2, 3), None, 2, None), _op(3, "read", None, 3, 5, 6)], True),
        # ... whose first cas was called too late
        ([_op(0, "write", 1, None, 0, 1), _op(1, "cas", (1, 2), None, 7, None),
          _op(2, "cas", (2, 3), None, 2, None), _op(3, "read", None, 3, 5, 6)], False),
        # one crashed write cannot explain two reads with another write between them
        ([_op(0, "write", 2, None, 0, None), _op(1, "read", None, 2, 1, 2),
          _op(2, "write", 3, None, 3, 4), _op(3, "read", None, 2, 5, 6)], False),
        # two can
        ([_op(0, "write", 2, None, 0, None), _op(1, "read", None, 2, 1, 2),
          _op(2, "write", 3, None, 3, 4), _op(3, "read", None, 2, 5, 6),
          _op(4, "write", 2, None, 0, None)], True),
        # a failed-cas observation (etcd) alone: the state was not its expected value
        ([_op(0, "write", 1, None, 0, 1), _op(1, "cas", (1, 5), False, 2, 3)], False),
        ([_op(0, "write", 1, None, 0, 1), _op(1, "cas", (1, 5), False, 2, 3),
          _op(2, "write", 2, None, 0, None)], True),
        ([_op(0, "write", 1, None, 0, 1), _op(1, "cas", (2, 5), False, 2, 3),
          _op(2, "cas", (1, 5), True, 4, 5), _op(3, "read", None, 5, 6, 7)], True),
        # a delete, and a nil read after it
        ([_op(0, "write", 1, None, 0, 1), _op(1, "delete", None, None, 2, 3),
          _op(2, "read", None, None, 4, 5)], True),
        ([_op(0, "write", 1, None, 0, 1), _op(1, "delete", None, None, 2, None),
          _op(2, "read", None, None, 4, 5), _op(3, "read", None, 1, 6, 7)], False),
    ],
)
def test_engine_table(ops: list[Operation], expected: bool) -> None:
    model = make_model("cas-register(initial=nil)")
    assert brute_force(model, prepare(model, ops)) is expected  # the table itself is right
    assert engine_verdicts(model, ops) == [expected]


@pytest.mark.parametrize("tuning", sorted(TUNINGS))
@pytest.mark.parametrize("seed", range(60))
def test_engine_matches_the_searches_on_crash_heavy_histories(
    seed: int, tuning: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Longer histories than brute force can try: a simulated register on 5 values with many
    crashed ops, half of them with one read changed to another value (often still
    explainable by a crashed write), failed cas dropped or kept as observations."""
    rng = random.Random(seed)
    records = simulate(seed, 60, rng.randrange(2, 8), True, rng.choice((0.1, 0.3, 0.5)))
    if seed % 2:
        reads = [r for r in records if r["type"] == "ok" and r["f"] == "read"]
        if reads:
            victim = rng.choice(reads)
            victim["value"] = rng.choice([v for v in (None, 0, 1, 2, 3, 4) if v != victim["value"]])
    model = make_model("cas-register(initial=nil)")
    monkeypatch.setattr(jit, "BEAM", TUNINGS[tuning][0])
    monkeypatch.setattr(jit, "CHAINS_IN_BEAM", TUNINGS[tuning][1])
    for ops in (ops_from_records(records), pair(records, failed_cas_observed=True, use_time=True)):
        (verdict,) = engine_verdicts(model, ops)
        kept = prepare(model, ops)
        for engine in (Search, FrontierSearch):
            try:
                expected = engine(model, kept, max_configs=500_000).run() is None
            except SearchLimit:
                continue
            assert verdict is expected, engine.__name__


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 30), st.sampled_from(MODELS))
def test_columnar_partitions_match_the_models(seed: int, n: int, spec: str) -> None:
    """prepare + partition + simplify on codes keep exactly the ops (and keys) the model keeps."""
    rng = random.Random(seed)
    model = make_model(spec)
    ops = register_history(rng, n, values=3, info_rate=0.4, keys=3, span=20)
    expected = [model.simplify(p) for p in model.partition(prepare(model, ops))]
    got = list(registers.partitions(model, OpTable.from_operations(ops)))
    assert [[o.id for o in p] for p in expected] == [[o.id for o in p.load()] for p in got]
    assert [model.partition_key(p) for p in expected] == [p.key for p in got]


def test_a_partition_the_engine_cannot_model_is_left_whole_and_refused() -> None:
    # a cas whose value is not [expected, new]: the register path leaves its partition whole
    # (no engine input), and check() refuses the operation before any search
    bad = Operation(id=0, process=0, f="cas", value=5, output=True, invoke=0, complete=1,
                    type="ok", call_pos=0.0, return_pos=1.0)
    (part,) = registers.partitions(make_model("cas-register"), OpTable.from_operations([bad]))
    assert not part.simplified and part.engine_input() is None
    with pytest.raises(OperationError, match=r"cas value must be \[expected, new\], got 5") as refused:
        check(make_model("cas-register"), [bad])
    assert refused.value.op == 0


def test_engine_gives_up_on_a_huge_closure() -> None:
    # 30 overlapping writes of repeating values, then a read no order explains: the engine's
    # closure grows past its budget; check() falls back to the searches, which time out
    ops = [Operation(id=i, process=i, f="write", value=i % 10, output=None, invoke=0, complete=100 + i,
                     type="ok", call_pos=0.0, return_pos=100.0 + i) for i in range(30)]
    ops.append(Operation(id=30, process=30, f="read", value=None, output=42, invoke=1000,
                         complete=1001, type="ok", call_pos=1000.0, return_pos=1001.0))
    (part,) = registers.partitions(make_model("register"), OpTable.from_operations(ops))
    engine_input = part.engine_input()
    assert engine_input is not None
    with pytest.raises(jit.GiveUp):
        jit.check_register(engine_input, max_closure=10_000)


def test_the_exact_pass_finds_what_the_beam_missed() -> None:
    # the first read of 7 (state 5) can use the crashed write of 7 or the crashed cas run
    # 5 -> 6 -> 7; the beam takes the write, which the second read of 7 (state 8) needs
    ops = [_op(0, "write", 5, None, 0, 1), _op(1, "cas", (5, 6), None, 2, None),
           _op(2, "cas", (6, 7), None, 2, None), _op(3, "write", 7, None, 2, None),
           _op(4, "read", None, 7, 3, 4), _op(5, "write", 8, None, 5, 6),
           _op(6, "read", None, 7, 7, 8)]
    model = make_model("cas-register(initial=nil)")
    assert brute_force(model, prepare(model, ops)) is True
    (part,) = registers.partitions(model, OpTable.from_operations(ops))
    engine_input = part.engine_input()
    assert engine_input is not None
    engine = jit.RegisterEngine(engine_input)
    steps = engine.steps()
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
    assert done.value.value is None and engine.exact_from >= 0
