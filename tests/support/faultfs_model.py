"""The durability model faultfs promises, written as plainly as possible (an in-memory file
system with a volatile and a durable copy of everything), for the state-machine tests.

- a file's durable bytes are its bytes at its last fsync;
- a directory's durable entries are its entries at its last fsync;
- a power loss keeps, from the root down, the durable entries of each directory reached
  (a directory named twice is laid out twice, a directory inside itself is left out), and
  the durable bytes of each file reached. Everything else is gone.

Operations return None or the errno POSIX gives.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

Tree = dict[str, bytes | None]  # path -> file content, or None for a directory


@dataclass
class Node:
    is_dir: bool
    v: bytes = b""  # file: what reads see
    d: bytes = b""  # file: what survives
    v_ents: dict[str, int] = field(default_factory=dict)  # dir: entries now
    d_ents: dict[str, int] = field(default_factory=dict)  # dir: entries that survive


class Model:
    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {0: Node(True)}
        self.next = 1

    # ---- lookup --------------------------------------------------------------------------

    def lookup(self, path: str) -> int | None:
        ino = 0
        for part in [p for p in path.split("/") if p]:
            n = self.nodes[ino]
            if not n.is_dir or part not in n.v_ents:
                return None
            ino = n.v_ents[part]
        return ino

    def _parent(self, path: str) -> tuple[int | None, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        p = self.lookup(head or "/")
        if p is not None and not self.nodes[p].is_dir:
            return None, name
        return p, name

    def _new(self, is_dir: bool) -> int:
        ino, self.next = self.next, self.next + 1
        self.nodes[ino] = Node(is_dir)
        return ino

    def paths(self, want_dir: bool | None = None) -> list[str]:
        return sorted(p for p, c in self.tree().items() if want_dir is None or (c is None) == want_dir)

    def tree(self) -> Tree:
        out: Tree = {}

        def walk(ino: int, prefix: str) -> None:
            for name, child in self.nodes[ino].v_ents.items():
                p = f"{prefix}/{name}"
                n = self.nodes[child]
                out[p] = None if n.is_dir else n.v
                if n.is_dir:
                    walk(child, p)

        walk(0, "")
        return out

    # ---- operations ----------------------------------------------------------------------

    def create(self, path: str) -> int | None:
        p, name = self._parent(path)
        if p is None:
            return errno.ENOENT
        if name in self.nodes[p].v_ents:
            return errno.EEXIST
        self.nodes[p].v_ents[name] = self._new(False)
        return None

    def mkdir(self, path: str) -> int | None:
        p, name = self._parent(path)
        if p is None:
            return errno.ENOENT
        if name in self.nodes[p].v_ents:
            return errno.EEXIST
        self.nodes[p].v_ents[name] = self._new(True)
        return None

    def write(self, path: str, offset: int, data: bytes) -> int | None:
        ino = self.lookup(path)
        if ino is None:
            return errno.ENOENT
        n = self.nodes[ino]
        if n.is_dir:
            return errno.EISDIR
        n.v = n.v[:offset].ljust(offset, b"\0") + data + n.v[offset + len(data):]
        return None

    def truncate(self, path: str, size: int) -> int | None:
        ino = self.lookup(path)
        if ino is None:
            return errno.ENOENT
        n = self.nodes[ino]
        if n.is_dir:
            return errno.EISDIR
        n.v = n.v[:size].ljust(size, b"\0")
        return None

    def fsync(self, path: str) -> int | None:
        ino = self.lookup(path)
        if ino is None:
            return errno.ENOENT
        n = self.nodes[ino]
        if n.is_dir:
            n.d_ents = dict(n.v_ents)
        else:
            n.d = n.v
        return None

    def unlink(self, path: str) -> int | None:
        p, name = self._parent(path)
        if p is None or name not in self.nodes[p].v_ents:
            return errno.ENOENT
        if self.nodes[self.nodes[p].v_ents[name]].is_dir:
            return errno.EISDIR
        del self.nodes[p].v_ents[name]
        return None

    def rmdir(self, path: str) -> int | None:
        p, name = self._parent(path)
        if p is None or name not in self.nodes[p].v_ents:
            return errno.ENOENT
        n = self.nodes[self.nodes[p].v_ents[name]]
        if not n.is_dir:
            return errno.ENOTDIR
        if n.v_ents:
            return errno.ENOTEMPTY
        del self.nodes[p].v_ents[name]
        return None

    def rename(self, old: str, new: str) -> int | None:
        po, no = self._parent(old)
        pn, nn = self._parent(new)
        if po is None or no not in self.nodes[po].v_ents or pn is None:
            return errno.ENOENT
        src = self.nodes[po].v_ents[no]
        if self.nodes[src].is_dir and (new + "/").startswith(old.rstrip("/") + "/"):
            return None if new == old else errno.EINVAL
        dst = self.nodes[pn].v_ents.get(nn)
        if dst is not None and dst != src and (old + "/").startswith(new.rstrip("/") + "/"):
            return errno.ENOTEMPTY  # Linux: the target is an ancestor of the source
        if dst is not None:
            if dst == src:
                return None
            if self.nodes[src].is_dir and not self.nodes[dst].is_dir:
                return errno.ENOTDIR
            if self.nodes[dst].is_dir and not self.nodes[src].is_dir:
                return errno.EISDIR
            if self.nodes[dst].is_dir and self.nodes[dst].v_ents:
                return errno.ENOTEMPTY
        del self.nodes[po].v_ents[no]
        self.nodes[pn].v_ents[nn] = src
        return None

    def link(self, old: str, new: str) -> int | None:
        src = self.lookup(old)
        pn, nn = self._parent(new)
        if src is None or pn is None:
            return errno.ENOENT
        if self.nodes[src].is_dir:
            return errno.EPERM
        if nn in self.nodes[pn].v_ents:
            return errno.EEXIST
        self.nodes[pn].v_ents[nn] = src
        return None

    def crash(self) -> None:
        """The power loss: lay the durable state out afresh from the root down."""
        old = self.nodes
        self.nodes = {}
        self.next = 1

        def lay(old_ino: int, new_ino: int, ancestors: frozenset[int]) -> None:
            ents: dict[str, int] = {}
            for name, child in old[old_ino].d_ents.items():
                c = old[child]
                if not c.is_dir:
                    if child not in self.nodes:  # files keep their identity (hard links)
                        self.nodes[child] = Node(False, v=c.d, d=c.d)
                        self.next = max(self.next, child + 1)
                    ents[name] = child
                elif child not in ancestors:
                    ents[name] = -child - 1  # placeholder: laid out below
            self.nodes[new_ino].v_ents = {}
            for name, ref in ents.items():
                if ref >= 0:
                    self.nodes[new_ino].v_ents[name] = ref
                    continue
                child = -ref - 1
                made = self._fresh_dir_id(old)
                self.nodes[made] = Node(True)
                self.nodes[new_ino].v_ents[name] = made
                lay(child, made, ancestors | {child})
            self.nodes[new_ino].d_ents = dict(self.nodes[new_ino].v_ents)

        self.nodes[0] = Node(True)
        lay(0, 0, frozenset({0}))
        self.next = max([self.next, *self.nodes]) + 1

    def _fresh_dir_id(self, old: dict[int, Node]) -> int:
        # new directory ids must not collide with file ids kept from the old state
        i = max([self.next, *old, *self.nodes]) + 1
        self.next = i + 1
        return i
