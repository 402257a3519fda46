"""`check(model, history)`: split by partition, search each, merge the verdicts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any

from checkers.linear import jit, registers, zones
from checkers.linear.frontier import FrontierSearch
from checkers.linear.model import Model
from checkers.linear.models import CasRegister
from checkers.linear.operation import UNKNOWN, Operation
from checkers.linear.result import (
    LinearResult,
    PartitionResult,
    counterexample,
    engine_counterexample,
    zone_counterexample,
)
from checkers.linear.search import Failure, Search, SearchLimit
from checkers.linear.table import OpTable
from checkers.result import UNKNOWN as VERDICT_UNKNOWN
from checkers.result import merge_verdicts

log = logging.getLogger(__name__)

#: Explored configurations per partition before giving up ("unknown", never out of memory).
DEFAULT_MAX_CONFIGS = 2_000_000
#: Slices (of 1024 steps) the depth-first search runs alone before the breadth-first one joins.
SECOND_ENGINE_AFTER = 8
#: Budget of the search that looks for evidence after the zone test refuted a partition.
EVIDENCE_SECONDS = 2.0
EVIDENCE_CONFIGS = 200_000
#: Rounds the searches get to find evidence for a partition the register engine refuted.
EVIDENCE_ROUNDS = 64


def prepare(model: Model, history: Iterable[Operation]) -> list[Operation]:
    """Jepsen semantics: drop failed ops and indeterminate ops that could only observe."""
    kept: list[Operation] = []
    for op in history:
        if op.type == "fail":
            continue
        if op.type == "info" and model.read_only(op.input, UNKNOWN):
            continue
        kept.append(op)
    return kept


def check(
    model: Model,
    history: Iterable[Operation] | OpTable,
    timeout: float | None = None,
    max_configs: int = DEFAULT_MAX_CONFIGS,
    stop_early: bool = True,
    shortcuts: bool = True,
    engines_both: bool = True,
) -> LinearResult:
    """Is `history` linearizable with respect to `model`?

    `history` is a list of operations or an `OpTable` (a long history read as columns).
    Partitions are searched in turns (as porcupine runs them in parallel), so one that is
    quick to refute is not stuck behind one that is slow to confirm; with `stop_early` the
    first refutation ends the check and the unfinished partitions are reported "unknown".
    With `shortcuts`, register partitions first go to the register engine (`jit.py`, integer
    codes, no `Operation` objects): what it finds linearizable is done; read/write registers
    with distinct written values skip the search (the zone test); the search then only runs,
    briefly, to find evidence for a refutation. Every other partition is searched
    depth-first (`Search`); one with crashed ops that takes more than a few thousand steps
    gets the breadth-first `FrontierSearch` racing it in turns (unless `engines_both` is off):
    the first verdict counts. Each engine has its own `max_configs` budget.
    """
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    parts = _partitions(model, history, shortcuts)
    results: list[PartitionResult | None] = [None] * len(parts)
    loaded: dict[int, list[Operation]] = {}
    active: list[tuple[int, list[Generator[None, None, Failure | None]]]] = []
    decided: list[int] = []  # found linearizable by the register engine; reported with the search's
    refuted_by_engine: dict[int, jit.Refuted] = {}
    ce: dict[str, Any] | None = None
    for n, part in enumerate(parts):
        engine_input = part.engine_input() if part.engine_input is not None else None
        if engine_input is not None:
            try:
                refuted = jit.check_register(engine_input, deadline)
            except jit.GiveUp as e:
                log.debug("partition %r: register engine gave up (%s)", part.key, e)
            else:
                if refuted is None:
                    assert part.zone_applicable is not None
                    if part.zone_applicable():  # the zone test would have said so right away
                        results[n] = PartitionResult(part.key, True, part.size)
                    else:
                        decided.append(n)
                    continue
                refuted_by_engine[n] = refuted
            del engine_input
        part_ops = part.load()
        key = part.key
        quick = model.refute(part_ops) if shortcuts else None
        if quick is not None:
            results[n] = PartitionResult(key, False, len(part_ops))
            if ce is None:
                ce = _evidence(model, key, part_ops, zones.ZoneVerdict(False, quick[1], [quick[0]]), deadline)
            continue
        if shortcuts and zones.applicable(model, part_ops):
            assert isinstance(model, CasRegister)
            verdict = zones.zone_check(model, part_ops)
            results[n] = PartitionResult(key, verdict.valid, len(part_ops))
            if not verdict.valid and ce is None:
                ce = _evidence(model, key, part_ops, verdict, deadline)
            continue
        loaded[n] = part_ops
        engines: list[Generator[None, None, Failure | None]] = [
            Search(model, part_ops, deadline=deadline, max_configs=max_configs).steps()
        ]
        active.append((n, engines))
    if not (stop_early and ce is not None):
        for n in decided:
            results[n] = PartitionResult(parts[n].key, True, parts[n].size)
        decided = []
    has_info = {n: any(o.type == "info" for o in loaded[n]) for n, _ in active}
    rounds = 0
    while active and not (stop_early and ce is not None):
        rounds += 1
        still: list[tuple[int, list[Generator[None, None, Failure | None]]]] = []
        for n, engines in active:
            if stop_early and ce is not None:
                still.append((n, engines))
                continue
            part_ops, key = loaded[n], parts[n].key
            if engines_both and rounds == SECOND_ENGINE_AFTER and has_info[n]:
                # crashed ops and not quick for the depth-first search: race the breadth-first
                # one against it (it forgets the past at every return, which is what helps)
                engines.append(
                    FrontierSearch(model, part_ops, deadline=deadline, max_configs=max_configs).steps()
                )
            outcome: Failure | _Valid | SearchLimit | jit.Refuted | None = _advance(engines)
            if outcome is None and n in refuted_by_engine and rounds >= EVIDENCE_ROUNDS:
                # the register engine refuted it; the searches only look for better evidence
                outcome = refuted_by_engine[n]
            if outcome is None:
                still.append((n, engines))
                continue
            for gen in engines:
                gen.close()
            del loaded[n]
            if isinstance(outcome, SearchLimit):
                log.info("partition %r: gave up (%s)", key, outcome)
                results[n] = PartitionResult(key, VERDICT_UNKNOWN, len(part_ops), str(outcome))
                continue
            if isinstance(outcome, _Valid) and n in refuted_by_engine:
                log.error("partition %r: the search found a linearization the register engine "
                          "missed; trusting the search", key)
            failed = isinstance(outcome, (Failure, jit.Refuted))
            results[n] = PartitionResult(key, not failed, len(part_ops))
            if ce is None and isinstance(outcome, Failure):
                ce = counterexample(model, key, part_ops, outcome)
            elif ce is None and isinstance(outcome, jit.Refuted):
                ce = engine_counterexample(model, key, part_ops, outcome.op, outcome.pending)
        active = still
    for n in [*decided, *(n for n, _ in active)]:
        results[n] = PartitionResult(
            parts[n].key, VERDICT_UNKNOWN, parts[n].size,
            "not finished: another partition is already not linearizable",
        )
    for _, engines in active:
        for gen in engines:
            gen.close()
    done_results = [r for r in results if r is not None]
    return LinearResult(
        valid=merge_verdicts([r.valid for r in done_results]),
        model=model.name,
        partitions=done_results,
        counterexample=ce,
        elapsed=time.monotonic() - started,
    )


@dataclass
class _Part:
    """One partition, its operations built only when a search needs them."""

    key: Any
    size: int
    load: Callable[[], list[Operation]]
    engine_input: Callable[[], jit.RegisterOps | None] | None = None
    zone_applicable: Callable[[], bool] | None = None


def _partitions(model: Model, history: Iterable[Operation] | OpTable, shortcuts: bool) -> list[_Part]:
    """`model.partition(prepare(...))`, simplified with `shortcuts`; register models go by
    codes (`registers.py`) when the values allow it."""
    if shortcuts and registers.fits(model):
        try:
            table = history if isinstance(history, OpTable) else OpTable.from_operations(history)
            parts: list[_Part] = []
            for rp in registers.partitions(model, table):
                if rp.simplified:
                    parts.append(_Part(rp.key, len(rp.rows), rp.load, rp.engine_input, rp.zone_applicable))
                else:
                    simple = model.simplify(rp.load())
                    parts.append(_Part(model.partition_key(simple), len(simple), _given(simple)))
            return parts
        except TypeError:  # an unhashable value: the operation-list path copes
            log.debug("values not hashable: checking without the register engine")
    ops = history.operations() if isinstance(history, OpTable) else list(history)
    raw = model.partition(prepare(model, ops))
    if shortcuts:
        raw = [model.simplify(p) for p in raw]
    return [_Part(model.partition_key(p), len(p), _given(p)) for p in raw]


def _given(ops: list[Operation]) -> Callable[[], list[Operation]]:
    return lambda: ops


def _evidence(
    model: Model, key: Any, part: list[Operation], verdict: zones.ZoneVerdict, deadline: float | None
) -> dict[str, Any]:
    """A refutation without search (the zone test, or the model's `refute`), shown as the
    search's longest linearizations when a short search finds them, else as the ops at fault."""
    budget = time.monotonic() + EVIDENCE_SECONDS
    search = Search(model, part, deadline=budget if deadline is None else min(deadline, budget),
                    max_configs=EVIDENCE_CONFIGS)
    try:
        failure = search.run()
    except SearchLimit:
        failure = None
    if failure is not None:
        return counterexample(model, key, part, failure)
    return zone_counterexample(model, key, part, verdict.ops, verdict.message)


class _Valid:
    """Marker: an engine found the partition linearizable."""


def _advance(
    engines: list[Generator[None, None, Failure | None]],
) -> Failure | _Valid | SearchLimit | None:
    """One slice of each engine still running. None while no engine has an answer; a
    SearchLimit once every engine gave up (the first one's reason)."""
    gave_up: SearchLimit | None = None
    for gen in list(engines):
        try:
            next(gen)
        except StopIteration as done:
            return _Valid() if done.value is None else done.value
        except SearchLimit as e:
            engines.remove(gen)
            gave_up = gave_up or e
    if not engines:
        return gave_up or SearchLimit("no engine left")
    return None
