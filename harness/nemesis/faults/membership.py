"""Membership changes: remove a follower from the voters, then add it back with a wiped data
directory (it rejoins as a new member)."""

from __future__ import annotations

import random
from typing import Any

from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.protocols import HarnessError, LeaderLookup, Membership


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    assert isinstance(st.db, Membership)
    lead = st.leader()
    members = st.members()
    candidates = [n for n in members if n != lead]
    if len(members) < 3 or not candidates:
        raise HarnessError("membership change needs 3 members and a follower")
    node = rng.choice(candidates)
    st.db.remove_member(node)
    st.removed.add(node)
    active.undo["nodes"] = [node]
    return {"op": "remove", "node": node}


def add_back(st: NemesisState, active: ActiveFault) -> list[str]:
    assert isinstance(st.db, Membership)
    added = []
    for n in active.undo.get("nodes", []):
        st.db.add_member(n)
        st.removed.discard(n)
        st.killed.discard(n)
        added.append(n)
    return added


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    return {"op": "add", "nodes": add_back(st, active), "wiped": True}


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    removed = sorted(st.removed)
    for n in removed:
        try:
            assert isinstance(st.db, Membership)
            st.db.add_member(n)
        except (HarnessError, OSError) as e:
            errors.append(f"add back {n}: {e}")
    done["added"] = removed
    st.removed.clear()


FAULT = Fault(
    name="membership",
    summary="remove a follower from the voters, add it back wiped",
    start=start,
    stop=stop,
    heal=heal,
    heal_order=50,
    db_needs=(Membership, LeaderLookup),
    min_nodes=3,
)
