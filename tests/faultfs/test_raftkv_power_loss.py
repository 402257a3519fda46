"""raftkv with every node's data directory on faultfs: a coordinated power failure (all nodes
SIGKILLed at one instant, their unsynced data dropped, restarted) loses no acknowledged write,
and a single node's power failure leaves it able to rejoin. raftkv fsyncs its WAL before it
acknowledges, so anything less would be a bug in raftkv or in faultfs."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.faultfs_mount import Mount
from tests.support.raftkv_cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _power_fail(c: Cluster, mounts: dict[str, Mount], names: list[str]) -> list[dict[str, Any]]:
    for n in names:  # one instant for all of them
        c.signal(n, signal.SIGKILL)
    for n in names:
        p = c.members[n].proc
        assert p is not None
        p.wait(timeout=10)  # dead and reaped: every request it had in flight is answered
    return [mounts[n].ctl("lose-unsynced") for n in names]


def _cluster_on_faultfs(root: Path) -> tuple[Cluster, dict[str, Mount]]:
    # frequent snapshots: the load also writes, renames and deletes snapshot and WAL files
    c = Cluster(root / "cluster", spare=0, extra=["--snapshot-count", "50"])
    mounts: dict[str, Mount] = {}
    for n in c.initial:
        mounts[n] = Mount(root / f"ffs-{n}").start()
        c.members[n].data_dir = mounts[n].mnt  # the node's data dir is the mount itself
    return c, mounts


def _write_then_power_fail(c: Cluster, mounts: dict[str, Mount]) -> dict[str, int]:
    """Writers on every node; all nodes lose power while they write. The acked writes."""
    acked: dict[str, int] = {}
    stop = threading.Event()

    def writer(w: int) -> None:
        kc = c.client(c.initial[w % 3])
        i = 0
        while not stop.is_set():
            key = f"w{w}-{i}"
            try:
                if kc.put(key, i).status == "ok":
                    acked[key] = i
            except OSError:
                pass
            i += 1
        kc.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    reports = _power_fail(c, mounts, c.initial)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(acked) > 20, "too few writes were acknowledged to test anything"
    assert all(r["generation"] >= 2 for r in reports)
    return acked


def _lost(c: Cluster, acked: dict[str, int]) -> list[str]:
    c.start_all()
    kc = c.client(c.wait_leader(timeout=30))
    lost = [k for k, v in sorted(acked.items()) if kc.get(k).value != v]
    kc.close()
    return lost


def test_coordinated_power_failure_loses_no_acknowledged_write(fuse_root: Path) -> None:
    c, mounts = _cluster_on_faultfs(fuse_root)
    try:
        c.start_all()
        kc = c.client(c.wait_leader())
        for i in range(60):  # a first snapshot, so snap/ exists too
            assert kc.put(f"warm-{i}", i).status == "ok"
        kc.close()
        # the load below runs in a second boot (the first is
        # test_power_failure_before_wal_and_snap_dirs_are_durable)
        for n in c.initial:
            c.stop(n)
        c.start_all()
        c.wait_leader()
        acked = _write_then_power_fail(c, mounts)
        lost = _lost(c, acked)
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes lost: {lost[:10]}"

        # one node's power failure: it restarts from what it had made durable and catches up
        lead = c.wait_leader()
        victim = next(n for n in c.initial if n != lead)
        _power_fail(c, mounts, [victim])
        kc = c.client(lead)
        for i in range(20):
            assert kc.put(f"after-{i}", i).status == "ok"
        applied = c.status(lead)
        kc.close()
        assert applied is not None
        c.start(victim)
        c.wait_applied(victim, int(applied["applied"]), timeout=30)
    finally:
        c.close()
        for m in mounts.values():
            m.stop()


def test_power_failure_before_wal_and_snap_dirs_are_durable(fuse_root: Path) -> None:
    """During the first boot: wal/ and snap/ (and what is fsynced in them) survive a power
    failure because raftkv fsyncs the data dir after making them (it once did not: found by
    faultfs; ext4's journal happens to commit such a mkdir with the next fsync)."""
    c, mounts = _cluster_on_faultfs(fuse_root)
    try:
        c.start_all()
        c.wait_leader()
        acked = _write_then_power_fail(c, mounts)
        lost = _lost(c, acked)
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes lost: {lost[:10]}"
    finally:
        c.close()
        for m in mounts.values():
            m.stop()
