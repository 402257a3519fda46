"""Network partitions, as Jepsen's grudges: halves, one node (or the leader) isolated, a ring
of overlapping majorities, a bridge node that sees both sides."""

from __future__ import annotations

import random
from typing import Any

from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.net import grudges
from harness.protocols import HarnessError, LeaderLookup


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    members = st.members()
    kind = active.kind
    shape: Any
    if kind == "halves":
        grudge, shape = grudges.halves(members, rng)
    elif kind in ("one", "leader"):
        grudge, shape = grudges.isolate(members, st.targets(kind, rng)[0])
    elif kind == "ring":
        grudge, shape = grudges.majorities_ring(members, rng)
    elif kind == "bridge":
        grudge, shape = grudges.bridge(members, rng)
    else:
        raise HarnessError(f"nemesis: unknown partition kind {kind!r}")
    st.cut(id(active), grudge)
    key = "views" if kind == "ring" else "groups"
    return {"kind": kind, key: shape}


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    st.cut(id(active), None)
    return {"kind": active.kind, "healed": True}


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    try:
        st.provider.heal()
    except (HarnessError, OSError) as e:
        errors.append(f"heal network: {e}")
    st.grudges.clear()
    st.partitioned = False


FAULT = Fault(
    name="partition",
    summary="cut the network between groups of nodes",
    start=start,
    stop=stop,
    heal=heal,
    heal_order=10,
    kinds=("halves", "one", "leader", "ring", "bridge"),
    kinds_field="partitions",
    kind_db_needs={"leader": (LeaderLookup,)},
    min_nodes=2,
)
