"""A node's clock drifts, then the node is cut off: the schedule that breaks a leader lease.

A lease read is safe only while clocks drift within a bound: a leader that counts its lease
in its own ticks and a follower that waits out an election timeout in its own ticks agree
only while their clocks run at about the same rate. This fault slows (or speeds) one node's
clock, the leader's or any one's (nemesis.drift_targets), to a rate drawn from
nemesis.clock_rates, and `nemesis.drift_before_isolate` seconds later isolates that node from
all the others, until the fault's end: a slowed leader's lease then outlives the election of
its successor. The stop heals that partition and puts the clock back to rate 1 (the offset it
drifted to stays until the final heal resets every clock, as after a `rate` clock fault).

Recorded as `start-drift-isolate` (the drift: node, rate, its clock), an `isolate` op when
the node is cut off (its groups, and which node led at that moment), and
`stop-drift-isolate`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from typing import Any

from harness.nemesis import clocks
from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.net import grudges
from harness.protocols import DB, FakeableClock, LeaderLookup, Provider
from harness.providers.clock import ClockOp

KINDS = ("leader", "one")
#: Seconds of drift before the isolation (nemesis.drift_before_isolate).
DEFAULT_LEAD = 2.0


def _lead(opts: Mapping[str, Any]) -> float:
    v = opts.get("drift_before_isolate")
    return DEFAULT_LEAD if v is None else float(v)


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    clocks.check_supported(st)
    node = st.targets(active.kind, rng)[0]
    rate = rng.choice(clocks.rates(st.opts))
    lead = _lead(st.opts)
    active.undo["nodes"] = [node]
    changed = clocks.change(st, [node], [ClockOp("rate", rate)])
    active.undo["isolate_at"] = time.monotonic() + lead
    return {"kind": active.kind, "nodes": [node], "rate": rate, "isolate_after_s": lead, "clocks": changed}


def during(st: NemesisState, active: ActiveFault, stop: threading.Event) -> None:
    """Wait out the drift, then cut the node off from every other member."""
    at = active.undo.get("isolate_at")
    if at is None or stop.wait(max(0.0, at - time.monotonic())):
        return
    node = active.undo["nodes"][0]

    def isolate() -> dict[str, Any]:
        lead = st.leader()
        grudge, groups = grudges.isolate(st.members(), node)
        st.cut(id(active), grudge)
        active.undo["isolated"] = True
        return {"fault": "drift-isolate", "kind": active.kind, "nodes": [node], "groups": groups, "leader": lead}

    if st.step is not None:
        st.step("isolate", isolate)
    else:
        isolate()


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    nodes = active.undo.get("nodes", [])
    healed = bool(active.undo.get("isolated"))
    if healed:
        st.cut(id(active), None)
    value: dict[str, Any] = {"kind": active.kind, "nodes": nodes, "healed": healed, "rate": 1.0}
    value["clocks"] = clocks.change(st, nodes, [ClockOp("rate", 1.0)]) if nodes else {}
    return value


def refuse(test: Mapping[str, Any], db: DB, provider: Provider) -> str | None:
    nem = test.get("nemesis") or {}
    lead = _lead(nem)
    duration = float(nem.get("duration", 5.0))
    if lead >= duration:
        return (f"nemesis.drift_before_isolate ({lead:g} s) must be shorter than nemesis.duration "
                f"({duration:g} s), or the node is never isolated")
    return None


FAULT = Fault(
    name="drift-isolate",
    summary="slow or speed one node's clock (the leader's), then isolate that node",
    start=start,
    stop=stop,
    during=during,
    kinds=KINDS,
    kinds_field="drift_targets",
    db_needs=(FakeableClock,),
    provider_needs=clocks.NEEDS,
    kind_db_needs={"leader": (LeaderLookup,)},
    min_nodes=2,
    refuse=refuse,
)
