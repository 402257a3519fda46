"""Power loss: SIGKILL one node, a minority or all of them at one instant, drop what their
data dirs never made durable (faultfs `lose-unsynced`), and start them again at the stop.

`all` is a coordinated power failure: every member is killed at once (one thread each), and
only once all are gone does any lose its unsynced data, so none restarts early and copies
state back from a peer that has not lost power yet. The dropping itself is faultfs's
(docs/faultfs.md): writes, truncates, creates, renames and unlinks not made durable by an
fsync of the file or of its directory are undone.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness import disk
from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState, restart_killed
from harness.protocols import DataDirFaults, DataDirs, HarnessError, Kill

#: Paths a node lost, listed per node in the history (faultfs counts them all).
MAX_PATHS = 10


def kill_at_once(st: NemesisState, nodes: list[str]) -> None:
    """SIGKILL every node in one instant and return once all are gone (Kill.kill waits)."""
    assert isinstance(st.db, Kill)
    if len(nodes) == 1:
        st.db.kill(nodes[0])
        return
    with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="power-loss") as pool:
        for fut in [pool.submit(st.db.kill, n) for n in nodes]:
            fut.result()


def _what_was_lost(reply: dict[str, Any]) -> dict[str, Any]:
    return {
        "bytes_lost": reply.get("bytes_lost", 0),
        "files_rolled_back": reply.get("files_rolled_back", 0),
        "paths_lost": list(reply.get("paths_lost") or [])[:MAX_PATHS],
        "paths_lost_count": reply.get("paths_lost_count", 0),
        "paths_restored_count": reply.get("paths_restored_count", 0),
    }


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    provider = st.provider
    assert isinstance(provider, DataDirFaults)
    targets = st.targets(active.kind, rng)
    active.undo["nodes"] = targets  # restarted at the stop, whatever fails below
    st.killed.update(targets)
    kill_at_once(st, targets)
    lost: dict[str, Any] = {}
    errors = []
    for n in targets:
        try:
            lost[n] = _what_was_lost(provider.disk_control(n, "lose-unsynced"))
        except HarnessError as e:
            errors.append(str(e))
    if errors:
        raise HarnessError("; ".join(errors))
    return {"kind": active.kind, "nodes": targets, "lost": lost}


FAULT = Fault(
    name="lose-unsynced",
    summary="power loss: kill nodes at one instant, drop their unsynced data, restart them",
    start=start,
    stop=restart_killed,
    # nodes still down at the end are in st.killed: the kill family's heal starts them
    kinds=("one", "minority", "all"),
    kinds_field="power_losses",
    db_needs=(Kill, DataDirs),
    provider_needs=(DataDirFaults,),
    refuse=disk.refusal,
)
