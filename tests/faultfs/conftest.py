"""Fixtures: a real faultfs mount per test, always unmounted and stopped afterwards."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultfs.cli import mounted, unmount
from tests.support.env import procs_naming
from tests.support.faultfs_mount import Mount, require_fuse


@pytest.fixture
def fuse_root(tmp_path: Path) -> Iterator[Path]:
    """A folder for mounts; afterwards no process naming it runs (faultfs, nodes on its
    mounts) and nothing under it stays mounted, also when the test failed."""
    require_fuse()
    yield tmp_path
    for pid in procs_naming(str(tmp_path)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for d in tmp_path.rglob("mnt"):
        if mounted(d):
            unmount(d)


@pytest.fixture
def ffs(fuse_root: Path) -> Iterator[Mount]:
    m = Mount(fuse_root / "m1").start()
    try:
        yield m
    finally:
        m.stop()
        assert not mounted(m.mnt)
