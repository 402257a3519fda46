"""A TimeoutNow held in the network across its target's removal (raftkv's proxies).

Hold TimeoutNow on the link leader -> target, ask for the transfer, wait until the leader
abandons it (it refuses the removal while the transfer is in progress), remove the target,
restart it (raftkv kills removed members) and release the TimeoutNow: a correct node ignores
it unless it still counts itself a voter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from harness.nemesis.faults import membership
from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.net.msgfilter import hold
from harness.protocols import (
    HarnessError,
    LeaderLookup,
    LeaderTransfer,
    Membership,
    MessageProxies,
    NodeStatus,
    RaftkvTransport,
)

STEP_TIMEOUT = 5.0  # bound on each wait of the scenario
POLL = 0.1


def poll(cond: Callable[[], Any]) -> bool:
    """Poll `cond()` every POLL seconds for at most STEP_TIMEOUT seconds."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(POLL)
    return bool(cond())


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    assert isinstance(st.provider, MessageProxies)
    assert isinstance(st.db, LeaderTransfer) and isinstance(st.db, Membership)
    db = st.db
    hub = st.provider.message_hub()
    lead = st.leader()
    if lead is None:
        raise HarnessError("no leader to transfer from")
    candidates = [n for n in st.live_members() if n != lead]
    if len(st.members()) < 3 or not candidates:
        raise HarnessError("stale-transfer needs 3 members and a live follower")
    to = rng.choice(candidates)
    value: dict[str, Any] = {"from": lead, "to": to}
    hub.set_rule(lead, to, hold("TIMEOUT_NOW"))
    try:
        try:
            db.transfer_leader(to)
        except HarnessError as e:  # expected: the transfer cannot finish while TimeoutNow is held
            value["transfer"] = str(e)
        value["held"] = poll(lambda: hub.held_frames(lead, to) > 0) and hub.held_frames(lead, to)
        if not value["held"]:
            raise HarnessError(f"{lead} sent no TimeoutNow to {to} within {STEP_TIMEOUT} s")
        errors: list[str] = []

        def remove() -> bool:
            try:
                db.remove_member(to)
                return True
            except HarnessError as e:  # refused while the transfer is still in progress
                errors.append(str(e))
                return False

        if not poll(remove):
            raise HarnessError(f"removal of {to} refused for {STEP_TIMEOUT} s: {errors[-1]}")
        st.removed.add(to)
        active.undo["nodes"] = [to]
        db.start(to)  # the removed member must be alive to receive the stale TimeoutNow
        value["removed"] = True
    finally:
        # released at once: every entry appended from here on makes the others' logs longer
        # than the removed node's, and its votes are then rightly refused
        value["released"] = hub.held_frames(lead, to)
        hub.set_rule(lead, to, None)
    # recorded for the reader: a target that never learnt its removal may campaign even when
    # correct (it still counts itself a voter); the checker judges by the node's own view
    if isinstance(db, NodeStatus):
        value["knows_removed"] = poll(lambda: to not in ((db.status(to) or {}).get("voters") or [to]))
    return value


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    """Add the removed node back, waiting out the elections its campaign may have caused."""
    errors: list[str] = []

    def add_back() -> bool:
        try:
            membership.add_back(st, active)
            return True
        except HarnessError as e:
            errors.append(str(e))
            return False

    if not poll(add_back):
        raise HarnessError(f"adding back {active.undo.get('nodes')} failed for {STEP_TIMEOUT} s: {errors[-1]}")
    return {"op": "add", "nodes": list(active.undo.get("nodes", [])), "wiped": True}


FAULT = Fault(
    name="stale-transfer",
    summary="hold a TimeoutNow across its target's removal, then deliver it",
    start=start,
    stop=stop,
    db_needs=(LeaderLookup, LeaderTransfer, Membership, NodeStatus, RaftkvTransport),
    provider_needs=(MessageProxies,),
    min_nodes=3,
    exclusive=True,
)
