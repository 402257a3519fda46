"""The Raft paper's figure 8: an old-term entry counted committed, then overwritten
(played by harness.nemesis.figure8 on the local provider's proxies)."""

from __future__ import annotations

import random
from typing import Any

from harness.nemesis import figure8
from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.protocols import (
    HarnessError,
    LeaderLookup,
    MessageProxies,
    NodeStatus,
    RaftkvTransport,
)


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    assert isinstance(st.provider, MessageProxies)
    assert isinstance(st.db, NodeStatus) and isinstance(st.db, LeaderLookup)
    hub = st.provider.message_hub()
    st.partitioned = True
    return figure8.play(st.db.status, st.db.leader, st.live_members(), st.provider, hub, st.rules)


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    assert isinstance(st.provider, MessageProxies)
    hub = st.provider.message_hub()
    for src, dst in st.rules:
        hub.set_rule(src, dst, None)
    st.rules.clear()
    st.provider.heal()
    st.partitioned = False
    return {"healed": True}


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    if not st.rules or not isinstance(st.provider, MessageProxies):
        return
    try:
        hub = st.provider.message_hub()
        for src, dst in st.rules:
            hub.set_rule(src, dst, None)
    except (HarnessError, OSError) as e:
        errors.append(f"clear message rules: {e}")
    st.rules.clear()


FAULT = Fault(
    name="figure-eight",
    summary="the Raft paper's figure 8 (raftkv on the local provider's proxies)",
    start=start,
    stop=stop,
    heal=heal,
    heal_order=5,
    db_needs=(LeaderLookup, NodeStatus, RaftkvTransport),
    provider_needs=(MessageProxies,),
    min_nodes=3,
    exclusive=True,
    max_nodes=3,
)
