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

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from harness.protocols import DB, DataDirFaults, HarnessError, Provider


def wanted(test: Mapping[str, Any]) -> bool:
    """Whether the test's faults need data dirs on faultfs (a fault family whose
    provider_needs names DataDirFaults)."""
    from harness.nemesis import registry

    faults = (test.get("nemesis") or {}).get("faults") or []
    return any(DataDirFaults in registry.get(f).provider_needs for f in faults if f in registry.names())


def metadata(test: Mapping[str, Any]) -> str:
    """faultfs's `--metadata` for this test: `posix` or `durable` (nemesis.disk_metadata)."""
    return str((test.get("nemesis") or {}).get("disk_metadata") or "posix")


def refusal(test: Mapping[str, Any], db: DB, provider: Provider) -> str | None:
    """Why the disk fault families (their `refuse`) cannot run here: what the provider lacks
    for faultfs (no root, no FUSE), or None. Asked after their provider_needs are met."""
    assert isinstance(provider, DataDirFaults)
    return provider.disk_refusal()


def data_root(provider: Provider, node: str) -> str | None:
    """The directory on `node`'s host under which a DB must keep its durable data in this
    run (the node's faultfs mount), or None when the provider mounts none: then the DB
    chooses, as usual."""
    if isinstance(provider, DataDirFaults):
        return provider.disk_root(node)
    return None


class FaultfsMounts(Protocol):
    """One faultfs per node, on the controller's host (hostfs) or on the nodes' hosts
    (remotefs): what a provider's DataDirFaults methods hand over to."""

    def root(self, node: str) -> str | None: ...

    def control(self, node: str, command: str) -> dict[str, Any]: ...

    def files(self, node: str, under: str) -> list[tuple[str, int]]: ...

    def data_end(self, node: str, path: str) -> int: ...

    def alter(self, node: str, path: str, flips: Sequence[tuple[int, int]] = (),
              truncate: int | None = None) -> dict[str, Any]: ...


class MountedDataDirs:
    """DataDirFaults for a provider whose setup creates `self.disks` (the faultfs mounts) when
    `wanted(test)`; mixed into the local, netns and ssh providers."""

    name: str
    disks: FaultfsMounts | None

    def disk_refusal(self) -> str | None:
        return None

    def disk_root(self, node: str) -> str | None:
        return None if self.disks is None else self.disks.root(node)

    def _mounts(self) -> FaultfsMounts:
        if self.disks is None:
            raise HarnessError(f"{self.name}: no data dirs on faultfs in this run (no disk fault was asked for)")
        return self.disks

    def disk_control(self, node: str, command: str) -> dict[str, Any]:
        return self._mounts().control(node, command)

    def disk_files(self, node: str, under: str) -> list[tuple[str, int]]:
        return self._mounts().files(node, under)

    def disk_data_end(self, node: str, path: str) -> int:
        return self._mounts().data_end(node, path)

    def disk_alter(self, node: str, path: str, flips: Sequence[tuple[int, int]] = (),
                   truncate: int | None = None) -> dict[str, Any]:
        return self._mounts().alter(node, path, flips, truncate)
