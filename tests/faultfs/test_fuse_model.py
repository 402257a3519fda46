"""A real mount against the durability model, by hypothesis (bounded: one mount, reset
between examples)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.support.faultfs_machine import make_machine, read_tree
from tests.support.faultfs_model import Tree
from tests.support.faultfs_mount import Mount

pytestmark = [pytest.mark.root, pytest.mark.slow]


class MountDriver:
    mount: Mount  # set by the test

    def __init__(self) -> None:
        m = self.mount
        for name in os.listdir(m.mnt):  # the previous example's files, made durable and gone
            p = m.mnt / name
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        m.ctl("sync-all")

    def close(self) -> None:
        pass

    def _run(self, f: object, *args: object) -> int | None:
        try:
            f(*args)  # type: ignore[operator]
        except OSError as e:
            return e.errno
        return None

    def _p(self, path: str) -> str:
        return str(self.mount.mnt) + path

    def create(self, path: str) -> int | None:
        return self._run(lambda: os.close(os.open(self._p(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)))

    def mkdir(self, path: str) -> int | None:
        return self._run(os.mkdir, self._p(path))

    def write(self, path: str, offset: int, data: bytes) -> int | None:
        def go() -> None:
            fd = os.open(self._p(path), os.O_WRONLY)
            try:
                assert os.pwrite(fd, data, offset) == len(data)
            finally:
                os.close(fd)
        return self._run(go)

    def truncate(self, path: str, size: int) -> int | None:
        return self._run(os.truncate, self._p(path), size)

    def fsync(self, path: str) -> int | None:
        def go() -> None:
            fd = os.open(self._p(path), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return self._run(go)

    def unlink(self, path: str) -> int | None:
        return self._run(os.unlink, self._p(path))

    def rmdir(self, path: str) -> int | None:
        return self._run(os.rmdir, self._p(path))

    def rename(self, old: str, new: str) -> int | None:
        return self._run(os.rename, self._p(old), self._p(new))

    def link(self, old: str, new: str) -> int | None:
        return self._run(os.link, self._p(old), self._p(new))

    def crash(self) -> None:
        self.mount.ctl("lose-unsynced")

    def sync_all(self) -> None:
        self.mount.ctl("sync-all")

    def tree(self) -> Tree:
        return read_tree(str(self.mount.mnt))


def test_mount_matches_the_model(fuse_root: Path) -> None:
    m = Mount(fuse_root / "model").start()
    try:
        MountDriver.mount = m
        run_state_machine_as_test(
            make_machine(MountDriver),
            settings=settings(max_examples=40, stateful_step_count=25, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]),
        )
        # the backing directory holds nothing but what the mount shows (and the empty trash)
        m.ctl("sync-all")
        assert not any((m.backing / ".faultfs" / "trash").iterdir())
    finally:
        m.stop()
