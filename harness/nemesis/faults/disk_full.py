"""Disk full: the data dirs of one node, a minority or all of them fail writes with ENOSPC
(faultfs `disk-full on`) for the fault's duration; creates, extending truncates and
fallocate fail too, while cutting, renaming and unlinking still work, as on a full disk.

A node may crash on ENOSPC (raftkv and etcd stop rather than go on without their WAL): the
stop clears the condition and starts the node again if it is down (DB.start does nothing to
a running node), unless another fault holds it down.
"""

from __future__ import annotations

import random
from typing import Any

from harness import disk
from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.protocols import DataDirFaults, DataDirs, HarnessError


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    provider = st.provider
    assert isinstance(provider, DataDirFaults)
    targets = st.targets(active.kind, rng)
    active.undo["nodes"] = targets
    for n in targets:
        provider.disk_control(n, "disk-full on")
        st.disk_full.add(n)
    return {"kind": active.kind, "nodes": targets}


def _clear(st: NemesisState, nodes: list[str], errors: list[str]) -> list[str]:
    """Writes succeed again on `nodes`; the ones no other fault holds down are started (if
    they crashed meanwhile). Returns the nodes started or left running."""
    provider = st.provider
    assert isinstance(provider, DataDirFaults)
    for n in nodes:
        try:
            provider.disk_control(n, "disk-full off")
            st.disk_full.discard(n)
        except HarnessError as e:
            errors.append(str(e))
    up = []
    for n in nodes:
        if n in st.removed or n in st.killed or n in st.disk_full:
            continue
        try:
            st.db.start(n)
            up.append(n)
        except (HarnessError, OSError) as e:
            errors.append(f"start {n}: {e}")
    return up


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    errors: list[str] = []
    up = _clear(st, active.undo.get("nodes", []), errors)
    if errors:
        raise HarnessError("; ".join(errors))
    return {"kind": active.kind, "cleared": active.undo.get("nodes", []), "running": up}


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    full = sorted(st.disk_full)
    if full:
        _clear(st, full, errors)
        done["disk_full_cleared"] = full


FAULT = Fault(
    name="disk-full",
    summary="writes to nodes' data dirs fail with ENOSPC for a while",
    start=start,
    stop=stop,
    heal=heal,
    heal_order=30,
    kinds=("one", "minority", "all"),
    kinds_field="disk_fulls",
    db_needs=(DataDirs,),
    provider_needs=(DataDirFaults,),
    refuse=disk.refusal,
)
