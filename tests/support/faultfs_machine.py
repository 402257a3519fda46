"""A hypothesis state machine driving faultfs and the model (tests/support/faultfs_model.py) side by
side: after every step what faultfs shows must equal the model's volatile state, and after a
power loss, the model's durable state. A driver runs the operations either on a Layer
directly or through a mounted file system."""

from __future__ import annotations

import os
from typing import Protocol

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.support.faultfs_model import Model, Tree

FILE_NAMES = st.sampled_from(["a", "b", "c"])
DIR_NAMES = st.sampled_from(["d", "e"])
ANY_NAME = st.sampled_from(["a", "b", "d", "e"])


class Driver(Protocol):
    """One file-system operation per method; each returns None or the errno it failed with."""

    def create(self, path: str) -> int | None: ...
    def mkdir(self, path: str) -> int | None: ...
    def write(self, path: str, offset: int, data: bytes) -> int | None: ...
    def truncate(self, path: str, size: int) -> int | None: ...
    def fsync(self, path: str) -> int | None: ...
    def unlink(self, path: str) -> int | None: ...
    def rmdir(self, path: str) -> int | None: ...
    def rename(self, old: str, new: str) -> int | None: ...
    def link(self, old: str, new: str) -> int | None: ...
    def crash(self) -> None: ...
    def sync_all(self) -> None: ...
    def tree(self) -> Tree: ...
    def close(self) -> None: ...


def read_tree(top: str, skip_root: frozenset[str] = frozenset()) -> Tree:
    """The directory tree under top as the model shows it."""
    out: Tree = {}

    def walk(d: str, prefix: str) -> None:
        for name in sorted(os.listdir(d)):
            if not prefix and name in skip_root:
                continue
            full = os.path.join(d, name)
            p = f"{prefix}/{name}"
            if os.path.isdir(full) and not os.path.islink(full):
                out[p] = None
                walk(full, p)
            else:
                with open(full, "rb") as f:
                    out[p] = f.read()

    walk(top, "")
    return out


def join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def make_machine(new_driver: type[Driver] | object) -> type[RuleBasedStateMachine]:
    class FaultfsMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model = Model()
            self.fs: Driver = new_driver()  # type: ignore[operator]
            self.crashes = 0

        def teardown(self) -> None:
            self.fs.close()

        @initialize(a=st.binary(max_size=12), b=st.binary(max_size=12))
        def durable_start(self, a: bytes, b: bytes) -> None:
            """Start from durable files, so unsynced overwrites and cuts have something to
            lose."""
            for path, data in (("/a", a), ("/d", None), ("/d/b", b)):
                if data is None:
                    self._same(f"mkdir {path}", self.model.mkdir(path), self.fs.mkdir(path))
                    continue
                self._same(f"create {path}", self.model.create(path), self.fs.create(path))
                self._same(f"write {path}", self.model.write(path, 0, data),
                           self.fs.write(path, 0, data))
            self.sync_all()

        def _same(self, what: str, expected: int | None, got: int | None) -> None:
            assert got == expected, f"{what}: faultfs gave errno {got}, the model {expected}"

        def _dirs(self) -> list[str]:
            return ["/", *self.model.paths(want_dir=True)]

        @rule(data=st.data(), name=FILE_NAMES)
        def create(self, data: st.DataObject, name: str) -> None:
            path = join(data.draw(st.sampled_from(self._dirs())), name)
            self._same(f"create {path}", self.model.create(path), self.fs.create(path))

        @rule(data=st.data(), name=DIR_NAMES)
        def mkdir(self, data: st.DataObject, name: str) -> None:
            path = join(data.draw(st.sampled_from(self._dirs())), name)
            self._same(f"mkdir {path}", self.model.mkdir(path), self.fs.mkdir(path))

        @precondition(lambda self: self.model.paths(want_dir=False))
        @rule(data=st.data())
        def write(self, data: st.DataObject) -> None:
            files = self.model.paths(want_dir=False)
            path = data.draw(st.sampled_from(files))
            size = len(self.model.tree()[path] or b"")
            offset = data.draw(st.integers(0, size + 4))
            buf = data.draw(st.binary(min_size=1, max_size=12))
            self._same(f"write {path}", self.model.write(path, offset, buf),
                       self.fs.write(path, offset, buf))

        @precondition(lambda self: self.model.paths(want_dir=False))
        @rule(data=st.data(), size=st.integers(0, 24))
        def truncate(self, data: st.DataObject, size: int) -> None:
            files = self.model.paths(want_dir=False)
            path = data.draw(st.sampled_from(files))
            self._same(f"truncate {path}", self.model.truncate(path, size),
                       self.fs.truncate(path, size))

        @rule(data=st.data())
        def fsync(self, data: st.DataObject) -> None:
            path = data.draw(st.sampled_from(["/", *self.model.paths()]))
            self._same(f"fsync {path}", self.model.fsync(path), self.fs.fsync(path))

        @precondition(lambda self: self.model.paths(want_dir=False))
        @rule(data=st.data())
        def unlink(self, data: st.DataObject) -> None:
            files = self.model.paths(want_dir=False)
            path = data.draw(st.sampled_from(files))
            self._same(f"unlink {path}", self.model.unlink(path), self.fs.unlink(path))

        @precondition(lambda self: self.model.paths(want_dir=True))
        @rule(data=st.data())
        def rmdir(self, data: st.DataObject) -> None:
            dirs = self.model.paths(want_dir=True)
            path = data.draw(st.sampled_from(dirs))
            self._same(f"rmdir {path}", self.model.rmdir(path), self.fs.rmdir(path))

        @precondition(lambda self: self.model.paths())
        @rule(data=st.data(), name=ANY_NAME)
        def rename(self, data: st.DataObject, name: str) -> None:
            paths = self.model.paths()
            old = data.draw(st.sampled_from(paths))
            new = join(data.draw(st.sampled_from(self._dirs())), name)
            self._same(f"rename {old} {new}", self.model.rename(old, new),
                       self.fs.rename(old, new))

        @precondition(lambda self: self.model.paths(want_dir=False))
        @rule(data=st.data(), name=FILE_NAMES)
        def link(self, data: st.DataObject, name: str) -> None:
            files = self.model.paths(want_dir=False)
            old = data.draw(st.sampled_from(files))
            new = join(data.draw(st.sampled_from(self._dirs())), name)
            self._same(f"link {old} {new}", self.model.link(old, new), self.fs.link(old, new))

        @rule()
        def sync_all(self) -> None:
            for path in ["/", *self.model.paths()]:
                self.model.fsync(path)
            self.fs.sync_all()

        @rule()
        def crash(self) -> None:
            self.model.crash()
            self.fs.crash()
            self.crashes += 1

        @invariant()
        def same_tree(self) -> None:
            got, want = self.fs.tree(), self.model.tree()
            assert got == want, (
                f"after {self.crashes} power losses faultfs shows\n{got}\nthe model\n{want}"
            )

    return FaultfsMachine
