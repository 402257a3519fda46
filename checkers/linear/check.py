"""`check(model, history)`: split by partition, search each, merge the verdicts."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterable
from typing import Any

from checkers.linear import zones
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
) -> LinearResult:
    """Is `history` linearizable with respect to `model`?

    Partitions are searched in turns (as porcupine runs them in parallel), so one that is
    quick to refute is not stuck behind one that is slow to confirm; with `stop_early` the
    first refutation ends the check and the unfinished partitions are reported "unknown".
    With `shortcuts`, read/write registers with distinct written values skip the search
    (the zone test); the search then only runs, briefly, to find evidence for a refutation.
    """
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    ops = prepare(model, history)
    parts = model.partition(ops)
    if shortcuts:
        parts = [model.simplify(part) for part in parts]
    results: list[PartitionResult | None] = [None] * len(parts)
    active: list[tuple[int, Generator[None, None, Failure | None]]] = []
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
        search = Search(model, part, deadline=deadline, max_configs=max_configs)
        active.append((n, search.steps()))
    while active and not (stop_early and ce is not None):
        still: list[tuple[int, Generator[None, None, Failure | None]]] = []
        for n, gen in active:
            if stop_early and ce is not None:
                still.append((n, gen))
                continue
            part, key = parts[n], model.partition_key(parts[n])
            try:
                next(gen)
                still.append((n, gen))
            except StopIteration as done:
                failure: Failure | None = done.value
                results[n] = PartitionResult(key, failure is None, len(part))
                if failure is not None and ce is None:
                    ce = counterexample(model, key, part, failure)
            except SearchLimit as e:
                log.info("partition %r: gave up (%s)", key, e)
                results[n] = PartitionResult(key, VERDICT_UNKNOWN, len(part), str(e))
        active = still
    for n, gen in active:
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
