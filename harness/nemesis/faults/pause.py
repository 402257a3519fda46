"""Process pauses: SIGSTOP one node, the leader or a minority; SIGCONT at the stop."""

from __future__ import annotations

import random
from typing import Any

from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.protocols import HarnessError, LeaderLookup, Pause


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    assert isinstance(st.db, Pause)
    targets = st.targets(active.kind, rng)
    for n in targets:
        st.db.pause(n)
        st.paused.add(n)
    active.undo["nodes"] = targets
    return {"kind": active.kind, "nodes": targets}


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    assert isinstance(st.db, Pause)
    resumed = []
    for n in active.undo.get("nodes", []):
        st.db.resume(n)
        st.paused.discard(n)
        resumed.append(n)
    return {"kind": active.kind, "resumed": resumed}


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    paused = sorted(st.paused)
    for n in paused:
        try:
            assert isinstance(st.db, Pause)
            st.db.resume(n)
        except (HarnessError, OSError) as e:
            errors.append(f"resume {n}: {e}")
    done["resumed"] = paused
    st.paused.clear()


FAULT = Fault(
    name="pause",
    summary="freeze node processes (SIGSTOP) and let them go on",
    start=start,
    stop=stop,
    heal=heal,
    heal_order=20,
    kinds=("one", "leader", "minority"),
    kinds_field="pauses",
    db_needs=(Pause,),
    kind_db_needs={"leader": (LeaderLookup,)},
)
