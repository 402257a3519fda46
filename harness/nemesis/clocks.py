"""What the nemesis knows of each node's clock, and how its clock faults change one.

The provider makes a change real (`ClockOperations.change_clock`: the node's clock agent
applies it at once); the nemesis keeps its own account of each node's clock, stepped by the
same rules as the agent (harness.faketime_site.faultline_clock.step), so that every nemesis
op that changes clocks can record each changed node's clock as it is from then on:
`{"clocks": {node: {"offset_s": seconds ahead of true time, "rate": r}}}`. Between two such
records a node's offset moves by (rate - 1) seconds per second. The report's clock panel
draws these (reports/clocks.py); the agent's own record (`<log>.applied`, collected as
`nodes/<node>/clock.applied`) says what the node applied and when.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.faketime_site.faultline_clock import Anchor as _Anchor
from harness.faketime_site.faultline_clock import step
from harness.protocols import ClockOperations, HarnessError
from harness.providers.clock import ClockOp

if TYPE_CHECKING:
    from harness.nemesis.state import NemesisState

#: Fault families that move clocks need this of the provider (and FakeableClock of the DB).
NEEDS = (ClockOperations,)


@dataclass
class NodeClock:
    """A node's clock as the nemesis set it: `clock + (t - real) * rate` at true time t."""

    real: float
    clock: float
    rate: float = 1.0

    @classmethod
    def true(cls, now: float) -> NodeClock:
        return cls(now, now, 1.0)

    def offset_at(self, t: float) -> float:
        return self.clock + (t - self.real) * self.rate - t

    def apply(self, op: ClockOp, now: float) -> NodeClock:
        a = step(_Anchor("", 0, self.real, self.clock, self.rate), op.kind, op.value, now)
        return NodeClock(a.real, a.clock, a.rate)

    def record(self, now: float) -> dict[str, float]:
        return {"offset_s": round(self.offset_at(now), 6), "rate": round(self.rate, 9)}


def _provider(st: NemesisState) -> ClockOperations:
    if not getattr(st.provider, "supports_clock", False) or not isinstance(st.provider, ClockOperations):
        why = getattr(st.provider, "clock_refusal", "") or "no clock control"
        raise HarnessError(f"clock faults are not supported by the {st.provider.name} provider: {why}")
    return st.provider


def check_supported(st: NemesisState) -> None:
    """HarnessError (recorded with the fault) where this run's provider cannot move clocks."""
    _provider(st)


def change(st: NemesisState, nodes: Iterable[str], ops: Sequence[ClockOp]) -> dict[str, dict[str, float]]:
    """Apply `ops` to each node's clock; return each node's clock from now on (for the op's
    `clocks` value). A node that is down applies them when it starts (its clock agent reads
    the whole log)."""
    prov = _provider(st)
    out: dict[str, dict[str, float]] = {}
    for node in nodes:
        prov.change_clock(node, ops)
        now = time.time()
        cur = st.clocks.get(node) or NodeClock.true(now)
        for op in ops:
            cur = cur.apply(op, now)
        st.clocks[node] = cur
        out[node] = cur.record(now)
    return out


def current(st: NemesisState, nodes: Iterable[str]) -> dict[str, dict[str, float]]:
    """Each node's clock now, as the nemesis set it (true time for one it never changed)."""
    now = time.time()
    return {n: (st.clocks.get(n) or NodeClock.true(now)).record(now) for n in nodes}


def reset_all(st: NemesisState, nodes: Sequence[str], errors: list[str]) -> dict[str, Any]:
    """Make every clock in `nodes` true time again (the final heal). Returns the heal's
    additions: `clocks_reset` (the nodes reset) and their `clocks`."""
    reset: list[str] = []
    for n in nodes:
        try:
            change(st, [n], [ClockOp("reset")])
            reset.append(n)
        except (HarnessError, OSError) as e:
            errors.append(f"reset clock {n}: {e}")
    return {"clocks_reset": reset, "clocks": current(st, reset)}


def rates(opts: Mapping[str, Any]) -> list[float]:
    """The rates a drift draws from (nemesis.clock_rates)."""
    return [float(r) for r in opts.get("clock_rates") or DEFAULT_RATES]


DEFAULT_RATES = (0.5, 0.8, 1.5, 2.0)
