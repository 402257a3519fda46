"""Disk corruption: while a node is down, flip bits in or truncate one of its data files (a
WAL segment, a snapshot, a NATS `.blk`: nemesis.corrupt_files), then start it again at the
stop. Only ever a minority of the nodes: once (n-1)/2 nodes have had their disk changed in a
run, later faults hit those again, so a majority keeps its data as the system wrote it.

Kinds (nemesis.corruptions): `bitflip` XORs one random bit into each of
nemesis.corrupt_bytes distinct random bytes of the file's data; `truncate` cuts the file at a
random length within its data. The data is the file without a zero-filled tail: a
preallocated file (etcd's 64 MB WAL segments) is mostly zeros, where a flip or a cut would
only ever hit space nothing was written to yet. The change is written through the node's faultfs mount and fsynced:
durable, like a change on a real disk. The history records the file (relative to the data
dir), its size, and each byte's offset, before and after (or the length it was cut to).
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Mapping
from typing import Any

from harness import disk
from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState, restart_killed
from harness.protocols import DB, DataDirFaults, DataDirs, HarnessError, Kill, Provider

KINDS = ("bitflip", "truncate")
#: Bytes a bitflip changes by default (nemesis.corrupt_bytes).
DEFAULT_BYTES = 1


def budget(nodes: int) -> int:
    """How many nodes' disks may be changed in one run: a minority."""
    return (nodes - 1) // 2


def choose_node(st: NemesisState, rng: random.Random) -> str:
    members = st.members()
    fresh = len(st.corrupted) < budget(len(st.nodes))
    pool = members if fresh else sorted(n for n in st.corrupted if n in members)
    if not pool:
        raise HarnessError("no member left whose disk may be corrupted (the minority is used up)")
    return rng.choice(pool)


def file_kinds(st: NemesisState, db: DataDirs) -> dict[str, str]:
    """The file kinds this run may change (nemesis.corrupt_files, default: all the DB has)."""
    offered = dict(db.data_files())
    asked = st.opts.get("corrupt_files") or sorted(offered)
    return {k: offered[k] for k in asked if k in offered}


def choose_file(files: list[tuple[str, int]], kinds: Mapping[str, str],
                rng: random.Random) -> tuple[str, str, int]:
    """(kind, path relative to the data dir, size) of a non-empty file of a kind drawn among
    those the node has."""
    by_kind: dict[str, list[tuple[str, int]]] = {}
    for kind, pattern in sorted(kinds.items()):
        found = [(p, size) for p, size in files if size > 0 and fnmatch.fnmatch(p, pattern)]
        if found:
            by_kind[kind] = found
    if not by_kind:
        raise HarnessError(f"no non-empty {' or '.join(sorted(kinds))} file in the data dir yet")
    kind = rng.choice(sorted(by_kind))
    path, size = rng.choice(by_kind[kind])
    return kind, path, size


def flips(size: int, count: int, rng: random.Random) -> list[tuple[int, int]]:
    """`count` distinct byte offsets below `size`, one random bit each."""
    offsets = sorted(rng.sample(range(size), min(count, size)))
    return [(o, 1 << rng.randrange(8)) for o in offsets]


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    db, provider = st.db, st.provider
    assert isinstance(db, Kill) and isinstance(db, DataDirs) and isinstance(provider, DataDirFaults)
    node = choose_node(st, rng)
    active.undo["nodes"] = [node]  # restarted at the stop, whatever fails below
    st.killed.add(node)
    db.kill(node)
    data = db.data_dir(node).rstrip("/")
    kind, rel, _size = choose_file(provider.disk_files(node, data), file_kinds(st, db), rng)
    path = f"{data}/{rel}"
    end = provider.disk_data_end(node, path)
    if end == 0:
        raise HarnessError(f"{rel} holds only zeros: nothing written to corrupt")
    if active.kind == "bitflip":
        count = int(st.opts.get("corrupt_bytes") or DEFAULT_BYTES)
        done = provider.disk_alter(node, path, flips=flips(end, count, rng))
    elif active.kind == "truncate":
        done = provider.disk_alter(node, path, truncate=rng.randrange(end))
    else:
        raise HarnessError(f"nemesis: unknown corruption {active.kind!r}")
    st.corrupted.add(node)
    return {"kind": active.kind, "node": node, "nodes": [node], "file": rel, "file_kind": kind,
            "data_end": end, **done}


def refuse(test: Mapping[str, Any], db: DB, provider: Provider) -> str | None:
    why = disk.refusal(test, db, provider)
    if why:
        return why
    assert isinstance(db, DataDirs)  # db_needs is checked first
    offered = db.data_files()
    for kind in (test.get("nemesis") or {}).get("corrupt_files") or []:
        if kind not in offered:
            return f"nemesis.corrupt_files: db {db.name} has no {kind!r} files (it has: {', '.join(sorted(offered))})"
    return None


FAULT = Fault(
    name="corrupt",
    summary="flip bits in or truncate a data file of a down node (a minority only), restart it",
    start=start,
    stop=restart_killed,
    # nodes still down at the end are in st.killed: the kill family's heal starts them
    kinds=KINDS,
    kinds_field="corruptions",
    db_needs=(Kill, DataDirs),
    provider_needs=(DataDirFaults,),
    min_nodes=3,
    refuse=refuse,
)
