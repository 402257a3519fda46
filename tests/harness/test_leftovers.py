"""Orphans of a dead controller are reaped; a live controller's nodes never are."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.run.leftovers import (
    CONTROLLER_PID,
    controller_alive,
    controller_marker,
    reap_run,
    start_time,
)


@pytest.fixture
def orphan(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    run_dir = tmp_path / "run"
    node_dir = run_dir / "work" / "n1"
    node_dir.mkdir(parents=True)
    # a stand-in node whose command line names the work dir, as a real node's --data-dir does
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(node_dir)])
    (node_dir / "node.pid").write_text(f"{p.pid}\n")
    yield run_dir, p
    if p.poll() is None:
        p.kill()
    p.wait(5)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(10)
    return p.pid


def test_dead_controller_orphans_are_killed(orphan: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, p = orphan
    (run_dir / "work" / CONTROLLER_PID).write_text(f"{dead_pid()} 1\n")
    assert reap_run(run_dir) == [p.pid]
    assert p.wait(5) == -9


def test_live_controller_is_left_alone(orphan: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, p = orphan
    (run_dir / "work" / CONTROLLER_PID).write_text(controller_marker())
    assert reap_run(run_dir) == []
    assert p.poll() is None


def test_reused_pid_is_not_the_controller(orphan: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    run_dir, p = orphan
    # the stand-in node's own pid with a wrong start time: a different process than the writer
    marker = run_dir / "work" / CONTROLLER_PID
    marker.write_text(f"{p.pid} {int(start_time(p.pid) or 0) + 1}\n")
    assert controller_alive(marker) is False
    assert controller_alive(tmp_path / "missing.pid") is None


def test_no_marker_no_reaping(orphan: tuple[Path, subprocess.Popen[bytes]]) -> None:
    run_dir, p = orphan
    assert reap_run(run_dir) == []
    assert p.poll() is None


def test_a_dead_controllers_faultfs_mount_is_detached(tmp_path: Path) -> None:
    from faultfs.cli import faultfs_mounts_under, mounted
    from tests.support.faultfs_mount import Mount, require_fuse

    require_fuse()
    run_dir = tmp_path / "run"
    work = run_dir / "work"
    m = Mount(work / "n1").start()
    try:
        assert m.proc is not None
        (work / "n1" / "faultfs.pid").write_text(f"{m.proc.pid}\n")
        (work / CONTROLLER_PID).write_text(f"{dead_pid()} 1\n")
        assert faultfs_mounts_under(run_dir) == [m.mnt]
        # What dies with the controller's whole session: faultfs's auto-unmount helper
        # (fusermount3, its child) first, so nothing takes the mount down when faultfs goes.
        helpers = subprocess.run(["pgrep", "-P", str(m.proc.pid)], capture_output=True, text=True).stdout.split()
        assert helpers, "no fusermount3 auto-unmount helper under faultfs"
        for pid in helpers:
            os.kill(int(pid), signal.SIGKILL)
        assert reap_run(run_dir) == [m.proc.pid]  # its command line names the work dir
        m.proc.wait(10)
        assert not mounted(m.mnt) and faultfs_mounts_under(run_dir) == []
    finally:
        m.stop()
