"""Clock faults on one node: jump its clock by an offset, run it at another rate, or strobe it
back and forth. Made real by the provider (libfaketime) for DBs whose processes honour it."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.protocols import FakeableClock, HarnessError

log = logging.getLogger(__name__)

STROBE_PERIOD = 0.25  # seconds between clock flips while strobing


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    if not st.provider.supports_clock:
        raise HarnessError(f"clock faults are not supported by the {st.provider.name} provider")
    node = rng.choice(st.members())
    st.clocked.add(node)
    active.undo["nodes"] = [node]
    mag = rng.uniform(0.5, max(0.5, st.max_clock_offset))
    kind = active.kind
    if kind == "jump":
        offset = mag if rng.random() < 0.5 else -mag
        st.provider.set_clock(node, offset)
        return {"kind": "jump", "nodes": [node], "offset_s": round(offset, 3)}
    if kind == "rate":
        rate = rng.choice([0.5, 0.8, 1.5, 2.0])
        st.provider.set_clock(node, 0.0, rate)
        return {"kind": "rate", "nodes": [node], "rate": rate}
    if kind == "strobe":
        # recorded now; the flipping itself runs in `during`, after the start is recorded
        active.undo["strobe"] = (node, mag, time.monotonic() + active.event.duration)
        return {"kind": "strobe", "nodes": [node], "offset_s": round(mag, 3), "period_s": STROBE_PERIOD}
    raise HarnessError(f"nemesis: unknown clock kind {kind!r}")


def during(st: NemesisState, active: ActiveFault, stop: threading.Event) -> None:
    """Flip the strobed node's clock between now and now + offset until the fault's time is
    up or `stop` is set."""
    strobe = active.undo.get("strobe")
    if strobe is None:
        return
    node, mag, deadline = strobe
    flips = 0
    while time.monotonic() < deadline and flips < 100_000:
        try:
            st.provider.set_clock(node, mag if flips % 2 == 0 else 0.0)
        except (HarnessError, OSError) as e:
            log.warning("nemesis: strobe on %s failed: %s", node, e)
            return
        flips += 1
        if stop.wait(STROBE_PERIOD):
            return


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    nodes = active.undo.get("nodes", [])
    for n in nodes:
        st.provider.set_clock(n, 0.0, 1.0)
        st.clocked.discard(n)
    return {"kind": active.kind, "reset": nodes}


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    if st.provider.supports_clock:
        for n in sorted(st.clocked):
            try:
                st.provider.set_clock(n, 0.0, 1.0)
            except (HarnessError, OSError) as e:
                errors.append(f"reset clock {n}: {e}")
    done["clocks_reset"] = sorted(st.clocked)
    st.clocked.clear()


FAULT = Fault(
    name="clock",
    summary="jump, strobe or skew one node's clock (libfaketime)",
    start=start,
    stop=stop,
    heal=heal,
    during=during,
    heal_order=30,
    kinds=("jump", "strobe", "rate"),
    kinds_field="clocks",
    db_needs=(FakeableClock,),
)
