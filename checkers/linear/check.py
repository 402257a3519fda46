"""`check(model, history)`: split by partition, search each, merge the verdicts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from checkers.linear import jit, registers, zones
from checkers.linear.frontier import FrontierSearch
from checkers.linear.inputs import validate
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
#: Slices (of 1024 steps) of its exact pass the register engine runs on a partition before it
#: takes turns with the others; and slices in all (a very long partition).
ENGINE_SLICES_FIRST = 2
ENGINE_SLICES_FIRST_MAX = 256


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
    An operation the model cannot take raises `inputs.OperationError` before any search.
    Partitions are searched in turns (as porcupine runs them in parallel), so one that is
    quick to refute is not stuck behind one that is slow to confirm; with `stop_early` the
    first refutation ends the check and the unfinished partitions are reported "unknown".
    With `shortcuts`, register partitions first go to the register engine (`jit.py`, integer
    codes, no `Operation` objects); what it finds linearizable is done, what it refutes or
    cannot decide goes on as every other partition: read/write registers with distinct
    written values skip the search (the zone test; the search then only runs, briefly, to
    find evidence for a refutation), the rest is searched depth-first (`Search`), and one with
    crashed ops that takes more than a few thousand steps gets the breadth-first
    `FrontierSearch` racing it in turns (unless `engines_both` is off): the first verdict
    counts. Each search has its own `max_configs` budget.
    """
    started = time.monotonic()
    if not isinstance(history, OpTable):
        history = list(history)
    validate(model, history)
    run = _Check(model, _partitions(model, history, shortcuts),
                 None if timeout is None else started + timeout, max_configs, shortcuts, engines_both)
    run.start()
    run.rounds(stop_early)
    results = run.finish()
    return LinearResult(
        valid=merge_verdicts([r.valid for r in results]),
        model=model.name,
        partitions=results,
        counterexample=run.ce,
        elapsed=time.monotonic() - started,
    )


@dataclass
class _Active:
    """A partition not decided yet: the register engine and/or the searches run on it."""

    n: int
    engine: jit.RegisterEngine | None = None
    steps: Generator[None, None, jit.Refuted | None] | None = None  # the engine's
    searches: list[Generator[None, None, Failure | None]] = field(default_factory=list)
    ops: list[Operation] | None = None  # loaded when the searches start
    has_info: bool = False
    rounds: int = 0  # rounds the searches have had
    refuted: jit.Refuted | None = None  # the register engine's verdict, if it refuted
    refuted_at: int = 0  # ... and the search round then


class _Check:
    """One check's partitions, verdicts so far and counterexample."""

    def __init__(
        self, model: Model, parts: list[_Part], deadline: float | None, max_configs: int,
        shortcuts: bool, engines_both: bool,
    ) -> None:
        self.model = model
        self.parts = parts
        self.deadline = deadline
        self.max_configs = max_configs
        self.shortcuts = shortcuts
        self.engines_both = engines_both
        self.results: list[PartitionResult | None] = [None] * len(parts)
        self.active: list[_Active] = []
        self.decided: list[int] = []  # linearizable per the register engine, not reported yet
        self.ce: dict[str, Any] | None = None

    def start(self) -> None:
        """Every partition's first turn, in order: the register engine's first few slices, else
        the quick refutation and the zone test; what is left becomes active."""
        for n, part in enumerate(self.parts):
            engine_input = part.engine_input() if part.engine_input is not None else None
            a = _Active(n)
            if engine_input is None:
                if self._start_searches(a):
                    self.active.append(a)
                continue
            a.engine = jit.RegisterEngine(engine_input, self.deadline)
            a.steps = a.engine.steps()
            del engine_input
            # the beam pass is linear: let it finish here, so that partitions are done (and
            # their engine's lists released) one at a time; an exact pass (a hard or a bad
            # partition) or a very long partition takes turns with the others instead
            exact = 0
            for _ in range(ENGINE_SLICES_FIRST_MAX):
                if not self._engine_turn(a, first_turn=True):
                    break
                if a.steps is None:  # refuted or gave up: the searches take over
                    self.active.append(a)
                    break
                exact += a.engine.exact_from >= 0
                if exact >= ENGINE_SLICES_FIRST:
                    self.active.append(a)
                    break
            else:
                self.active.append(a)

    def _engine_turn(self, a: _Active, first_turn: bool = False) -> bool:
        """One slice of the register engine; False once the partition is decided."""
        assert a.steps is not None
        part = self.parts[a.n]
        try:
            next(a.steps)
        except StopIteration as done:
            a.steps = None
            refuted: jit.Refuted | None = done.value
            if refuted is not None:
                a.refuted, a.refuted_at = refuted, a.rounds
                return a.ops is not None or self._start_searches(a)
            self._close(a)
            if not first_turn:
                self.results[a.n] = PartitionResult(part.key, True, part.size)
            elif part.zone_applicable is not None and part.zone_applicable():
                # what the zone test would have said right away
                self.results[a.n] = PartitionResult(part.key, True, part.size)
            else:  # reported when the searches start (as "not finished" if they never do)
                self.decided.append(a.n)
            return False
        except jit.GiveUp as e:
            log.debug("partition %r: register engine gave up (%s)", part.key, e)
            a.steps = None
            if a.ops is None:
                return self._start_searches(a)
            if not a.searches:  # the searches gave up before
                log.info("partition %r: gave up (%s)", part.key, e)
                self.results[a.n] = PartitionResult(part.key, VERDICT_UNKNOWN, len(a.ops), str(e))
                return False
            return True
        if not first_turn and a.ops is None and a.engine is not None and a.engine.struggling:
            # crashed ops that can be placed in many ways and no quick linearization: the
            # depth-first search sometimes finds one sooner, so race it
            return self._start_searches(a)
        return True

    def _start_searches(self, a: _Active) -> bool:
        """The operation-list path for one partition: the quick refutation, the zone test, else
        the depth-first search; False if decided at once."""
        model, part = self.model, self.parts[a.n]
        part_ops, key = part.load(), part.key
        quick = model.refute(part_ops) if self.shortcuts else None
        if quick is not None:
            self._close(a)
            self.results[a.n] = PartitionResult(key, False, len(part_ops))
            if self.ce is None:
                verdict = zones.ZoneVerdict(False, quick[1], [quick[0]])
                self.ce = _evidence(model, key, part_ops, verdict, self.deadline)
            return False
        if self.shortcuts and zones.applicable(model, part_ops):
            assert isinstance(model, CasRegister)
            self._close(a)
            verdict = zones.zone_check(model, part_ops)
            self.results[a.n] = PartitionResult(key, verdict.valid, len(part_ops))
            if not verdict.valid and self.ce is None:
                self.ce = _evidence(model, key, part_ops, verdict, self.deadline)
            return False
        search = Search(model, part_ops, deadline=self.deadline, max_configs=self.max_configs)
        a.ops, a.searches = part_ops, [search.steps()]
        a.has_info = any(o.type == "info" for o in part_ops)
        return True

    def rounds(self, stop_early: bool) -> None:
        if not (stop_early and self.ce is not None):
            for n in self.decided:
                self.results[n] = PartitionResult(self.parts[n].key, True, self.parts[n].size)
            self.decided = []
        while self.active and not (stop_early and self.ce is not None):
            active, self.active = self.active, []
            evidence_due = stop_early and any(a.refuted is not None for a in active)
            for a in active:
                if (stop_early and self.ce is not None) or (evidence_due and a.refuted is None):
                    # a partition is not linearizable: only its evidence is still wanted
                    self.active.append(a)
                    continue
                if a.steps is not None and not self._engine_turn(a):
                    continue
                if a.ops is None or self._search_turn(a):
                    self.active.append(a)

    def _search_turn(self, a: _Active) -> bool:
        """One slice of the partition's searches; True while undecided."""
        assert a.ops is not None
        model, key = self.model, self.parts[a.n].key
        a.rounds += 1
        if self.engines_both and a.rounds == SECOND_ENGINE_AFTER and a.has_info:
            # crashed ops and not quick for the depth-first search: race the breadth-first one
            # against it (it forgets the past at every return, which is what helps)
            a.searches.append(
                FrontierSearch(model, a.ops, deadline=self.deadline, max_configs=self.max_configs).steps()
            )
        outcome: Failure | _Valid | SearchLimit | jit.Refuted | None = _advance(a.searches)
        if isinstance(outcome, SearchLimit) and a.refuted is not None:
            outcome = a.refuted  # no evidence within their budget; the engine's verdict stands
        elif isinstance(outcome, SearchLimit) and a.steps is not None:
            a.searches = []  # the searches gave up; the register engine goes on alone
            return True
        if outcome is None and a.refuted is not None and a.rounds - a.refuted_at >= EVIDENCE_ROUNDS:
            outcome = a.refuted  # the register engine refuted it; no better evidence found
        if outcome is None:
            return True
        self._close(a)
        if isinstance(outcome, SearchLimit):
            log.info("partition %r: gave up (%s)", key, outcome)
            self.results[a.n] = PartitionResult(key, VERDICT_UNKNOWN, len(a.ops), str(outcome))
            return False
        if isinstance(outcome, _Valid) and a.refuted is not None:
            log.error("partition %r: the search found a linearization the register engine "
                      "missed; trusting the search", key)
        failed = isinstance(outcome, (Failure, jit.Refuted))
        self.results[a.n] = PartitionResult(key, not failed, len(a.ops))
        if self.ce is None and isinstance(outcome, Failure):
            self.ce = counterexample(model, key, a.ops, outcome)
        elif self.ce is None and isinstance(outcome, jit.Refuted):
            self.ce = engine_counterexample(model, key, a.ops, outcome.op, outcome.pending)
        return False

    @staticmethod
    def _close(a: _Active) -> None:
        for gen in [*a.searches, *([a.steps] if a.steps is not None else [])]:
            gen.close()
        a.searches, a.steps = [], None

    def finish(self) -> list[PartitionResult]:
        for a in self.active:
            self._close(a)
        for n in [*self.decided, *(a.n for a in self.active)]:
            self.results[n] = PartitionResult(
                self.parts[n].key, VERDICT_UNKNOWN, self.parts[n].size,
                "not finished: another partition is already not linearizable",
            )
        return [r for r in self.results if r is not None]


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
