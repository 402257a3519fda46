"""Leadership moves: the leader hands over to a chosen live follower (Raft's leader transfer),
or, for systems that cannot choose the next leader, steps down."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.protocols import (
    DB,
    HarnessError,
    LeaderLookup,
    LeaderStepDown,
    LeaderTransfer,
    Provider,
)


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    lead = st.leader()
    if lead is None:
        raise HarnessError("no leader to transfer from")
    if isinstance(st.db, LeaderTransfer):
        candidates = [n for n in st.live_members() if n != lead]
        if not candidates:
            raise HarnessError("no live follower to transfer to")
        to = rng.choice(candidates)
        st.db.transfer_leader(to)
        return {"from": lead, "to": to}
    assert isinstance(st.db, LeaderStepDown)
    st.db.step_down()
    return {"from": lead, "step_down": True}


def stop(st: NemesisState, active: ActiveFault) -> None:
    return None


def refuse(test: Mapping[str, Any], db: DB, provider: Provider) -> str | None:
    if not isinstance(db, LeaderTransfer | LeaderStepDown):
        return f"db {db.name} lacks LeaderTransfer and LeaderStepDown (see docs/adding-a-system.md)"
    return None


FAULT = Fault(
    name="transfer",
    summary="move leadership to another node (or make the leader step down)",
    start=start,
    stop=stop,
    instantaneous=True,
    db_needs=(LeaderLookup,),
    min_nodes=2,
    refuse=refuse,
)
