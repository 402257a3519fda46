"""Clean up after a controller that died without tearing down (SIGKILL, OOM, power cut).

The local provider writes `work/controller.pid` (pid and kernel start time, so a reused pid is
not mistaken for the controller) in each run folder; node pid files live under `work/<node>/`.
A run folder whose controller is gone but whose node processes still run left orphans: they
are killed, but only processes whose command line names that run's work dir, so a reused pid
is never hit.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from faultfs.cli import UsageError, faultfs_mounts_under, unmount
from harness.remotes.local import pid_alive

log = logging.getLogger(__name__)

CONTROLLER_PID = "controller.pid"


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def controller_marker() -> str:
    """What the local provider writes into work/controller.pid for this process."""
    return f"{os.getpid()} {start_time(os.getpid())}\n"


def controller_alive(path: Path) -> bool | None:
    """True/False from a controller.pid marker; None when there is no readable marker."""
    try:
        parts = path.read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return True
    if not pid_alive(pid):
        return False
    # same pid, same start time: the very process that wrote the marker
    return len(parts) < 2 or start_time(pid) == parts[1]


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def reap_run(run_dir: Path) -> list[int]:
    """Kill node processes of `run_dir` if its controller is dead; returns the pids killed."""
    work = run_dir / "work"
    if controller_alive(work / CONTROLLER_PID) is not False:
        return []  # no marker, or its controller is still alive
    killed = []
    for pidfile in sorted(work.glob("*/*.pid")):
        pid = _read_pid(pidfile)
        if pid is None or pid == os.getpid() or not pid_alive(pid) or str(work) not in _cmdline(pid):
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except ProcessLookupError:
            pass
    if killed:
        log.warning("%s: killed %d processes left by a dead controller: %s", run_dir, len(killed), killed)
    _detach_mounts(work)
    return killed


def _detach_mounts(work: Path) -> None:
    """Node data dirs on faultfs outlive a killed faultfs when root mounted them (no
    fusermount3 to take them down): detached, or every later look at the run folder hangs
    or fails on a dead mount."""
    try:
        mounts = faultfs_mounts_under(work)
    except OSError as e:
        log.warning("%s: cannot list mounts: %s", work, e)
        return
    for mnt in mounts:
        try:
            unmount(mnt)
            log.warning("%s: detached a faultfs mount left by a dead controller", mnt)
        except (UsageError, OSError) as e:
            log.warning("%s: detaching a faultfs mount left by a dead controller failed: %s", mnt, e)


def reap_store(store: Path, limit: int = 1000) -> list[int]:
    """reap_run over the store's run folders that still have a work dir (bounded)."""
    killed: list[int] = []
    for n, marker in enumerate(sorted(store.glob(f"*/*/work/{CONTROLLER_PID}"))):
        if n >= limit:
            break
        killed += reap_run(marker.parent.parent)
    return killed
