"""Clock faults, Jepsen's set, on one node, the leader, a minority or every node
(nemesis.clock_targets): jump the clock forward or back, strobe it back and forth, run it at
another rate for a while, or reset it to true time. Made real by the provider (libfaketime and
the clock agent, harness/providers/clock.py) for DBs whose processes honour it.

- `jump`: step by +-offset (0.5 s .. nemesis.max_clock_offset). The step stays until a `reset`
  or the final heal, as a clock stepped by an operator or a bad NTP server stays stepped.
- `strobe`: step +offset and back every nemesis.strobe_period seconds for the fault's
  duration; it ends where it started.
- `rate`: run at a rate drawn from nemesis.clock_rates for the fault's duration, then at rate
  1 again; the offset it drifted to stays until a reset.
- `reset`: true time, rate 1 (Jepsen's reset, an NTP sync).

Every start and stop records the changed nodes' clocks from then on (`clocks`,
harness/nemesis/clocks.py); the final heal resets every node's clock and says which.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

from harness.nemesis import clocks
from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.protocols import DB, FakeableClock, HarnessError, LeaderLookup, Provider
from harness.providers.clock import ClockOp

log = logging.getLogger(__name__)

KINDS = ("jump", "strobe", "rate", "reset")
TARGETS = ("one", "leader", "minority", "all")
#: The config's defaults of the family's parameters (nemesis.<name>).
DEFAULTS: dict[str, Any] = {
    "clock_targets": ["one", "leader", "minority"],
    "clock_rates": list(clocks.DEFAULT_RATES),
    "max_clock_offset": 10.0,
    "strobe_period": 0.25,
}
#: Bound on the flips of one strobe (a strobe of hours at the shortest period stays below).
MAX_FLIPS = 1_000_000


def _param(st: NemesisState, name: str) -> Any:
    v = st.opts.get(name)
    return DEFAULTS[name] if v is None else v


def _magnitude(st: NemesisState, rng: random.Random) -> float:
    top = float(st.max_clock_offset)
    return rng.uniform(min(0.5, top), top)


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    clocks.check_supported(st)
    target = rng.choice(list(_param(st, "clock_targets")))
    nodes = st.targets(target, rng)
    active.undo["nodes"] = nodes
    kind = active.kind
    value: dict[str, Any] = {"kind": kind, "target": target, "nodes": nodes}
    if kind == "jump":
        mag = _magnitude(st, rng)
        offset = round(mag if rng.random() < 0.5 else -mag, 3)
        value["offset_s"] = offset
        value["clocks"] = clocks.change(st, nodes, [ClockOp("jump", offset)])
    elif kind == "rate":
        rate = rng.choice(clocks.rates(st.opts))
        value["rate"] = rate
        value["clocks"] = clocks.change(st, nodes, [ClockOp("rate", rate)])
    elif kind == "strobe":
        mag = round(_magnitude(st, rng), 3)
        period = float(_param(st, "strobe_period"))
        # recorded now; the flipping itself runs in `during`, after the start is recorded
        active.undo["strobe"] = (mag, period, time.monotonic() + active.event.duration)
        value.update(offset_s=mag, period_s=period, clocks=clocks.current(st, nodes))
    elif kind == "reset":
        value["clocks"] = clocks.change(st, nodes, [ClockOp("reset")])
    else:
        raise HarnessError(f"nemesis: unknown clock kind {kind!r}")
    return value


def during(st: NemesisState, active: ActiveFault, stop: threading.Event) -> None:
    """Strobe: step the nodes' clocks +offset and back every period until the fault's time is
    up or `stop` is set, ending where they started."""
    strobe = active.undo.get("strobe")
    if strobe is None:
        return
    mag, period, deadline = strobe
    nodes = active.undo["nodes"]
    flips = 0
    try:
        while time.monotonic() < deadline and flips < MAX_FLIPS:
            clocks.change(st, nodes, [ClockOp("jump", mag if flips % 2 == 0 else -mag)])
            flips += 1
            if stop.wait(period):
                break
    except (HarnessError, OSError) as e:
        log.warning("nemesis: strobe on %s failed: %s", nodes, e)
        active.undo["strobe_error"] = str(e)
    finally:
        if flips % 2 == 1:  # still stepped forward: back to where the strobe started
            try:
                clocks.change(st, nodes, [ClockOp("jump", -mag)])
                flips += 1
            except (HarnessError, OSError) as e:
                active.undo["strobe_error"] = str(e)
        active.undo["flips"] = flips


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    nodes = active.undo.get("nodes", [])
    kind = active.kind
    value: dict[str, Any] = {"kind": kind, "nodes": nodes}
    if kind == "rate":
        value["rate"] = 1.0
        value["clocks"] = clocks.change(st, nodes, [ClockOp("rate", 1.0)])
        return value
    if kind == "strobe":
        value["flips"] = active.undo.get("flips", 0)
        if "strobe_error" in active.undo:
            value["error"] = active.undo["strobe_error"]
    # jump and reset: nothing to undo (a step stays until a reset)
    value["clocks"] = clocks.current(st, nodes)
    return value


def used(st: NemesisState) -> bool:
    """Did this run ask for faults that move clocks (or move any)?"""
    from harness.nemesis import registry

    asked = any(f in registry.names() and registry.get(f).moves_clocks for f in st.opts.get("faults") or [])
    return asked or bool(st.clocks)


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    """Reset every node's clock (not only those the run's faults moved: a change whose record
    was lost is reset too), when the run had clock faults at all."""
    if not used(st):
        return
    if not getattr(st.provider, "supports_clock", False):
        errors.append(f"reset clocks: {st.provider.name} provider has no clock control")
        return
    done.update(clocks.reset_all(st, st.nodes, errors))


def refuse(test: Mapping[str, Any], db: DB, provider: Provider) -> str | None:
    """A `leader` target needs LeaderLookup (targets are not kinds, so say it here)."""
    targets = (test.get("nemesis") or {}).get("clock_targets") or []
    if "leader" in targets and not isinstance(db, LeaderLookup):
        return f"nemesis.clock_targets: leader needs LeaderLookup, which db {db.name} lacks"
    return None


FAULT = Fault(
    name="clock",
    summary="jump, strobe, drift (rate) or reset clocks (libfaketime)",
    start=start,
    stop=stop,
    heal=heal,
    during=during,
    heal_order=30,
    kinds=KINDS,
    kinds_field="clocks",
    db_needs=(FakeableClock,),
    provider_needs=clocks.NEEDS,
    refuse=refuse,
)
