"""The volatile layer (no FUSE, no root) against the durability model, by hypothesis."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from faultfs import control
from faultfs.layer import STATE_DIR, Layer
from tests.support.faultfs_machine import make_machine, read_tree
from tests.support.faultfs_model import Tree

pytestmark = pytest.mark.slow  # about 3 s on a quiet machine


def _errno(e: OSError) -> int:
    assert e.errno is not None
    return e.errno


class LayerDriver:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="faultfs-layer-"))
        self.layer = Layer(self.dir)
        self.ids = (os.geteuid(), os.getegid())

    def close(self) -> None:
        self.layer.close()
        shutil.rmtree(self.dir)

    def _run(self, f: object, *args: object) -> int | None:
        try:
            f(*args)  # type: ignore[operator]
        except OSError as e:
            return _errno(e)
        return None

    def create(self, path: str) -> int | None:
        def go() -> None:
            fh = self.layer.create(path, 0o644, os.O_CREAT | os.O_EXCL | os.O_WRONLY, *self.ids)
            self.layer.release(fh)
        return self._run(go)

    def mkdir(self, path: str) -> int | None:
        return self._run(self.layer.mkdir, path, 0o755, *self.ids)

    def write(self, path: str, offset: int, data: bytes) -> int | None:
        def go() -> None:
            fh = self.layer.open(path, os.O_WRONLY)
            try:
                assert self.layer.write(fh, data, offset) == len(data)
            finally:
                self.layer.release(fh)
        return self._run(go)

    def truncate(self, path: str, size: int) -> int | None:
        return self._run(self.layer.truncate, path, size, None)

    def fsync(self, path: str) -> int | None:
        def go() -> None:
            if (self.dir / path.lstrip("/")).is_dir():
                fh = self.layer.opendir(path)
                self.layer.fsyncdir(fh)
            else:
                fh = self.layer.open(path, os.O_RDONLY)
                self.layer.fsync(fh, datasync=False)
            self.layer.release(fh)
        return self._run(go)

    def unlink(self, path: str) -> int | None:
        return self._run(self.layer.unlink, path)

    def rmdir(self, path: str) -> int | None:
        return self._run(self.layer.rmdir, path)

    def rename(self, old: str, new: str) -> int | None:
        return self._run(self.layer.rename, old, new)

    def link(self, old: str, new: str) -> int | None:
        return self._run(self.layer.link, new, old)

    def crash(self) -> None:
        control.lose_unsynced(self.layer)
        assert not any((self.dir / STATE_DIR / "trash").iterdir())

    def sync_all(self) -> None:
        self.layer.sync_all()

    def tree(self) -> Tree:
        return read_tree(str(self.dir), skip_root=frozenset({STATE_DIR}))


def test_layer_matches_the_model() -> None:
    run_state_machine_as_test(
        make_machine(LayerDriver),
        settings=settings(max_examples=150, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )
