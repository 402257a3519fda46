"""Crashes: SIGKILL one node, the leader, a minority or all of them; restart them at the stop."""

from __future__ import annotations

import random
from typing import Any

from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState, restart_killed
from harness.protocols import HarnessError, Kill, LeaderLookup


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    assert isinstance(st.db, Kill)
    targets = st.targets(active.kind, rng)
    for n in targets:
        st.db.kill(n)
        st.killed.add(n)
    active.undo["nodes"] = targets
    return {"kind": active.kind, "nodes": targets}


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    restart = sorted(st.killed - st.removed)
    for n in restart:
        try:
            st.db.start(n)
        except (HarnessError, OSError) as e:
            errors.append(f"restart {n}: {e}")
    done["restarted"] = restart
    st.killed.clear()


FAULT = Fault(
    name="kill",
    summary="crash nodes (SIGKILL) and restart them",
    start=start,
    stop=restart_killed,
    heal=heal,
    heal_order=40,
    kinds=("one", "leader", "minority", "all"),
    kinds_field="kills",
    db_needs=(Kill,),
    kind_db_needs={"leader": (LeaderLookup,)},
)
