"""`check(model, history)`: split by partition, search each, merge the verdicts."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable
from typing import Any

from checkers.linear import zones
from checkers.linear.frontier import FrontierSearch
from checkers.linear.model import Model
from checkers.linear.models import CasRegister
from checkers.linear.operation import UNKNOWN, Operation
from checkers.linear.result import (
    LinearResult,
    PartitionResult,
    counterexample,
    zone_counterexample,
)
from checkers.linear.search import Failure, Search, SearchLimit
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
    history: Iterable[Operation],
    timeout: float | None = None,
    max_configs: int = DEFAULT_MAX_CONFIGS,
    stop_early: bool = True,
    shortcuts: bool = True,
    engines_both: bool = True,
) -> LinearResult:
    """Is `history` linearizable with respect to `model`?

    Partitions are searched in turns (as porcupine runs them in parallel), so one that is
    quick to refute is not stuck behind one that is slow to confirm; with `stop_early` the
    first refutation ends the check and the unfinished partitions are reported "unknown".
    With `shortcuts`, read/write registers with distinct written values skip the search
    (the zone test); the search then only runs, briefly, to find evidence for a refutation.
    Every other partition is searched depth-first (`Search`); one with crashed ops that takes
    more than a few thousand steps gets the breadth-first `FrontierSearch` racing it in turns
    (unless `engines_both` is off): the first verdict counts. Each engine has its own
    `max_configs` budget.
    """
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    ops = prepare(model, history)
    parts = model.partition(ops)
    if shortcuts:
        parts = [model.simplify(part) for part in parts]
    results: list[PartitionResult | None] = [None] * len(parts)
    active: list[tuple[int, list[Generator[None, None, Failure | None]]]] = []
    ce: dict[str, Any] | None = None
    for n, part in enumerate(parts):
        quick = model.refute(part) if shortcuts else None
        if quick is not None:
            key = model.partition_key(part)
            results[n] = PartitionResult(key, False, len(part))
            if ce is None:
                ce = _evidence(model, key, part, zones.ZoneVerdict(False, quick[1], [quick[0]]), deadline)
            continue
        if shortcuts and zones.applicable(model, part):
            assert isinstance(model, CasRegister)
            verdict = zones.zone_check(model, part)
            key = model.partition_key(part)
            results[n] = PartitionResult(key, verdict.valid, len(part))
            if not verdict.valid and ce is None:
                ce = _evidence(model, key, part, verdict, deadline)
            continue
        engines: list[Generator[None, None, Failure | None]] = [
            Search(model, part, deadline=deadline, max_configs=max_configs).steps()
        ]
        active.append((n, engines))
    has_info = [any(o.type == "info" for o in part) for part in parts]
    rounds = 0
    while active and not (stop_early and ce is not None):
        rounds += 1
        still: list[tuple[int, list[Generator[None, None, Failure | None]]]] = []
        for n, engines in active:
            if stop_early and ce is not None:
                still.append((n, engines))
                continue
            part, key = parts[n], model.partition_key(parts[n])
            if engines_both and rounds == SECOND_ENGINE_AFTER and has_info[n]:
                # crashed ops and not quick for the depth-first search: race the breadth-first
                # one against it (it forgets the past at every return, which is what helps)
                engines.append(
                    FrontierSearch(model, part, deadline=deadline, max_configs=max_configs).steps()
                )
            outcome = _advance(engines)
            if outcome is None:
                still.append((n, engines))
                continue
            for gen in engines:
                gen.close()
            if isinstance(outcome, SearchLimit):
                log.info("partition %r: gave up (%s)", key, outcome)
                results[n] = PartitionResult(key, VERDICT_UNKNOWN, len(part), str(outcome))
                continue
            failure = outcome if isinstance(outcome, Failure) else None
            results[n] = PartitionResult(key, failure is None, len(part))
            if failure is not None and ce is None:
                ce = counterexample(model, key, part, failure)
        active = still
    for n, engines in active:
        for gen in engines:
            gen.close()
        results[n] = PartitionResult(
            model.partition_key(parts[n]), VERDICT_UNKNOWN, len(parts[n]),
            "not finished: another partition is already not linearizable",
        )
    done_results = [r for r in results if r is not None]
    return LinearResult(
        valid=merge_verdicts([r.valid for r in done_results]),
        model=model.name,
        partitions=done_results,
        counterexample=ce,
        elapsed=time.monotonic() - started,
    )


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
