"""Disk faults' plumbing: node data directories on faultfs (docs/faultfs.md), and the files in
them that the corrupt fault may change.

A provider with the `DataDirFaults` ability mounts one faultfs per node at setup when the
test asks for a fault that needs it (`wanted`); a DB with the `DataDirs` ability keeps its
durable data under that mount (`data_root`), and names which of its files are which kind
(WAL segment, snapshot, ...), so the faults in harness/nemesis/faults (lose-unsynced, corrupt,
disk-full) can reach them. Everything that is not durable data (logs, the node event log, pid
files) stays off the mount: a power loss must not take the record of the run with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.protocols import DataDirFaults, Provider


def wanted(test: Mapping[str, Any]) -> bool:
    """Whether the test's faults need data dirs on faultfs (a fault family whose
    provider_needs names DataDirFaults)."""
    from harness.nemesis import registry

    faults = (test.get("nemesis") or {}).get("faults") or []
    return any(DataDirFaults in registry.get(f).provider_needs for f in faults if f in registry.names())


def metadata(test: Mapping[str, Any]) -> str:
    """faultfs's `--metadata` for this test: `posix` or `durable` (nemesis.disk_metadata)."""
    return str((test.get("nemesis") or {}).get("disk_metadata") or "posix")


def data_root(provider: Provider, node: str) -> str | None:
    """The directory on `node`'s host under which a DB must keep its durable data in this
    run (the node's faultfs mount), or None when the provider mounts none: then the DB
    chooses, as usual."""
    if isinstance(provider, DataDirFaults):
        return provider.disk_root(node)
    return None
