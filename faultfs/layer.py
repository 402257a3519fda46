"""The volatile layer over a backing directory: every file-system operation faultfs serves,
with the journalling that lets a power loss drop what was never made durable.

The backing directory always holds the latest state (what reads see, like a page cache over
the disk); the durable state is the backing state minus the journals (faultfs.journal):

- a regular file's durable content is its content at its last fsync/fdatasync (or O_SYNC /
  O_DSYNC write): before an unsynced write or truncate covers durable bytes they are saved;
  appends past the durable size need nothing saved, the power loss cuts them off;
- a directory's durable entries are its entries at its last fsync (``metadata="posix"``):
  its first create, link, unlink, rename or mkdir since then takes a listing of its entries
  (name -> backing inode); an entry the durable state still names is moved into the hidden
  ``.faultfs/trash`` instead of being deleted, so its inode and content survive until a
  directory fsync forgets it. With ``metadata="durable"`` (LazyFS's model) namespace changes
  are durable at once and only file data is volatile.

Attributes (mode, owner, times, xattrs) pass through and are durable at once. The power loss
itself (rebuilding the backing directory as the durable state) is faultfs.crash.

All state changes happen under one lock, so a power loss is atomic with respect to operations
in flight; the real fsync of the backing file runs outside it. Handles opened before a power
loss are dead afterwards (EIO), so a killed process's late requests cannot write into the
state that survived.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import stat
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from faultfs.journal import DirJournal, Entry, FileJournal

log = logging.getLogger(__name__)

STATE_DIR = ".faultfs"  # hidden in the mount's root; holds trash/ (and old/ during a rebuild)
TRASH = f"{STATE_DIR}/trash"
Metadata = Literal["posix", "durable"]

# Flags the backing open must not see: the kernel already applied them (O_CREAT, O_EXCL),
# faultfs journals them itself (O_TRUNC), or pwrite needs exact offsets (O_APPEND).
_STRIP = os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_APPEND | os.O_NOCTTY | getattr(os, "O_DIRECT", 0)
_SYNC = os.O_SYNC | os.O_DSYNC

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.syncfs.argtypes = [ctypes.c_int]


def _err(code: int, what: str = "") -> OSError:
    return OSError(code, os.strerror(code) + (f": {what}" if what else ""))


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if _libc.fallocate(fd, mode, offset, length) != 0:
        raise _err(ctypes.get_errno())


def _dtype(e: os.DirEntry[str]) -> int:
    if e.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if e.is_symlink():
        return stat.S_IFLNK
    if e.is_file(follow_symlinks=False):
        return stat.S_IFREG
    return stat.S_IFMT(e.stat(follow_symlinks=False).st_mode)


@dataclass
class Handle:
    fd: int
    ino: int
    gen: int  # the power-loss generation it was opened in
    sync: bool = False  # opened O_SYNC / O_DSYNC: every write is made durable
    is_dir: bool = False


def rel(path: str) -> str:
    """A FUSE path ("/a/b") as a path relative to the backing root ("a/b", "." for root)."""
    r = path.lstrip("/")
    return r or "."


class Layer:
    def __init__(self, backing: Path, metadata: Metadata = "posix") -> None:
        self.backing = backing.resolve()
        self.metadata: Metadata = metadata
        self.root_fd = os.open(self.backing, os.O_RDONLY | os.O_DIRECTORY)
        self.root_ino = os.fstat(self.root_fd).st_ino
        self.lock = threading.Lock()
        self.gen = 1
        self.disk_full = False
        self.files: dict[int, FileJournal] = {}
        self.dirs: dict[int, DirJournal] = {}
        self.refs: Counter[int] = Counter()  # inode -> directory journals naming it
        self.trash: dict[int, bool] = {}  # stashed inode -> is_dir
        self.handles: dict[int, Handle] = {}
        self.open_count: Counter[int] = Counter()
        self.dead: set[int] = set()  # unlinked, unnamed by the durable state, still open
        self.counters: Counter[str] = Counter()
        self.broken: str | None = None  # set when a power-loss rebuild failed midway
        self._prepare_state_dir()

    # ---- set-up and teardown -------------------------------------------------------------

    def _prepare_state_dir(self) -> None:
        state = self.backing / STATE_DIR
        if (state / "old").exists():
            raise RuntimeError(
                f"{state / 'old'}: left by a power-loss rebuild that did not finish; "
                "inspect the backing directory and remove it"
            )
        if (state / "trash").exists() and any((state / "trash").iterdir()):
            log.warning("%s: dropping entries left by an earlier faultfs", state / "trash")
            shutil.rmtree(state / "trash")
        (state / "trash").mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        with self.lock:
            for h in self.handles.values():
                os.close(h.fd)
            self.handles.clear()
            os.close(self.root_fd)

    # ---- helpers (caller holds the lock) -------------------------------------------------

    @staticmethod
    def hidden(path: str) -> bool:
        return path == "/" + STATE_DIR or path.startswith("/" + STATE_DIR + "/")

    def _check(self, path: str) -> str:
        if self.broken is not None:
            raise _err(errno.EIO, self.broken)
        if self.hidden(path):
            raise _err(errno.ENOENT, path)
        return rel(path)

    def _check_new(self, path: str) -> str:
        if self.broken is not None:
            raise _err(errno.EIO, self.broken)
        if self.hidden(path):
            raise _err(errno.EPERM, f"{path} is reserved for faultfs")
        return rel(path)

    def _handle(self, fh: int) -> Handle:
        if self.broken is not None:
            raise _err(errno.EIO, self.broken)
        h = self.handles.get(fh)
        if h is None:
            raise _err(errno.EBADF)
        if h.gen != self.gen:
            raise _err(errno.EIO, "handle opened before a power loss")
        return h

    def _lstat(self, r: str) -> os.stat_result:
        return os.lstat(r, dir_fd=self.root_fd)

    def _listing(self, r: str) -> dict[str, Entry]:
        fd = os.open(r, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self.root_fd)
        try:
            with os.scandir(fd) as it:
                ents = {
                    e.name: Entry(e.inode(), e.is_dir(follow_symlinks=False))
                    for e in it
                    if not (r == "." and e.name == STATE_DIR)
                }
        finally:
            os.close(fd)
        return ents

    def _journal_dir(self, r: str) -> None:
        """Remember the durable entries of directory r before its first change since fsync."""
        if self.metadata == "durable":
            return
        ino = self._lstat(r).st_ino
        j = self.dirs.get(ino)
        if j is None:
            j = self.dirs[ino] = DirJournal(self._listing(r))
            for e in j.entries.values():
                self.refs[e.ino] += 1
        j.changes += 1

    def _drop_dir_journal(self, ino: int) -> None:
        """Forget a directory journal; stashed inodes nobody names any more are deleted."""
        work = [ino]
        while work:
            j = self.dirs.pop(work.pop(), None)
            if j is None:
                continue
            for e in j.entries.values():
                self.refs[e.ino] -= 1
                if self.refs[e.ino] <= 0:
                    del self.refs[e.ino]
                    if e.ino in self.trash:
                        is_dir = self.trash.pop(e.ino)
                        path = f"{TRASH}/{e.ino}"
                        if is_dir:
                            os.rmdir(path, dir_fd=self.root_fd)
                            work.append(e.ino)
                        else:
                            os.unlink(path, dir_fd=self.root_fd)
                            self._forget_file(e.ino)

    def _forget_file(self, ino: int) -> None:
        """The inode lost its last name: its content can never be durable again."""
        self.files.pop(ino, None)
        if self.open_count[ino] > 0:
            self.dead.add(ino)

    def _file_journal(self, h: Handle) -> FileJournal | None:
        if h.ino in self.dead:
            return None
        j = self.files.get(h.ino)
        if j is None:
            j = self.files[h.ino] = FileJournal(os.fstat(h.fd).st_size)
        return j

    def _read_at(self, fd: int) -> Any:
        return lambda off, n: os.pread(fd, n, off)

    def _remove(self, r: str, st: os.stat_result, replace_by: str | None = None) -> None:
        """Remove name r (unlink, rmdir, or replace it by renaming replace_by over it).

        The inode survives in the trash when it loses its last name while a directory
        journal still names it (it is part of the durable state)."""
        is_dir = stat.S_ISDIR(st.st_mode)
        last = is_dir or st.st_nlink <= 1
        if last and self.refs.get(st.st_ino, 0) > 0:
            stash = f"{TRASH}/{st.st_ino}"
            os.rename(r, stash, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
            if replace_by is not None:
                try:
                    os.rename(replace_by, r, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
                except OSError:
                    os.rename(stash, r, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
                    raise
            self.trash[st.st_ino] = is_dir
            self.counters["stashed"] += 1
            return
        if replace_by is not None:
            os.rename(replace_by, r, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
        elif is_dir:
            os.rmdir(r, dir_fd=self.root_fd)
        else:
            os.unlink(r, dir_fd=self.root_fd)
        if last:
            if is_dir:
                self._drop_dir_journal(st.st_ino)
            else:
                self._forget_file(st.st_ino)

    def _own(self, r: str, uid: int, gid: int) -> None:
        """Give a new entry to the calling user (faultfs itself runs as root)."""
        if uid != os.geteuid() or gid != os.getegid():
            os.chown(r, uid, gid, dir_fd=self.root_fd, follow_symlinks=False)

    def _new_handle(self, fd: int, flags: int, is_dir: bool = False) -> int:
        st = os.fstat(fd)
        self.handles[fd] = Handle(fd, st.st_ino, self.gen, bool(flags & _SYNC), is_dir)
        self.open_count[st.st_ino] += 1
        return fd

    def _open_backing(self, r: str, flags: int, mode: int = 0, create: bool = False) -> int:
        """Open read-write where possible: saving durable bytes needs reads even through a
        write-only handle (the kernel already checked the caller's permissions)."""
        base = flags & ~_STRIP & ~os.O_ACCMODE | (os.O_CREAT | os.O_EXCL if create else 0)
        base |= os.O_NOFOLLOW  # the kernel resolved symlinks already; never follow one as root
        try:
            return os.open(r, base | os.O_RDWR, mode, dir_fd=self.root_fd)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EISDIR, errno.ETXTBSY, errno.EROFS, errno.EPERM):
                raise
        return os.open(r, base | (flags & os.O_ACCMODE), mode, dir_fd=self.root_fd)

    def _truncate_fd(self, h: Handle, length: int) -> None:
        cur = os.fstat(h.fd).st_size
        if length > cur and self.disk_full:
            raise _err(errno.ENOSPC)
        j = self._file_journal(h)
        if j is not None:
            j.note_truncate(length, cur, self._read_at(h.fd))
        os.ftruncate(h.fd, length)

    # ---- files ---------------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        r = self._check(path)
        with self.lock:
            fd = self._open_backing(r, flags)
            fh = self._new_handle(fd, flags)
            if flags & os.O_TRUNC:
                self._truncate_fd(self.handles[fh], 0)
            return fh

    def create(self, path: str, mode: int, flags: int, uid: int, gid: int) -> int:
        r = self._check_new(path)
        with self.lock:
            try:
                self._lstat(r)
                exists = True
            except FileNotFoundError:
                exists = False
            if exists:
                if flags & os.O_EXCL:
                    raise _err(errno.EEXIST, path)
                fd = self._open_backing(r, flags)
                fh = self._new_handle(fd, flags)
                if flags & os.O_TRUNC:
                    self._truncate_fd(self.handles[fh], 0)
                return fh
            if self.disk_full:
                raise _err(errno.ENOSPC)
            self._journal_dir(os.path.dirname(r) or ".")
            fd = self._open_backing(r, flags, mode, create=True)
            fh = self._new_handle(fd, flags)
            self._own(r, uid, gid)
            self.counters["creates"] += 1
            return fh

    def read(self, fh: int, size: int, offset: int) -> bytes:
        with self.lock:
            h = self._handle(fh)
            return os.pread(h.fd, size, offset)

    def write(self, fh: int, data: bytes, offset: int) -> int:
        with self.lock:
            h = self._handle(fh)
            if self.disk_full:
                raise _err(errno.ENOSPC)
            j = self._file_journal(h)
            if j is not None:
                if offset < j.durable_size:
                    cur = os.fstat(h.fd).st_size
                    j.note_write(offset, len(data), cur, self._read_at(h.fd))
                else:
                    j.unsynced_bytes += len(data)
            n = os.pwrite(h.fd, data, offset)
            self.counters["writes"] += 1
            self.counters["write_bytes"] += n
            if h.sync:
                self.files.pop(h.ino, None)
            return n

    def truncate(self, path: str | None, length: int, fh: int | None) -> None:
        with self.lock:
            if fh is not None:
                self._truncate_fd(self._handle(fh), length)
                return
            if path is None:
                raise _err(errno.ENOENT)
            r = self._check(path)
            fd = self._open_backing(r, os.O_WRONLY)
            try:
                st = os.fstat(fd)
                h = Handle(fd, st.st_ino, self.gen)
                self._truncate_fd(h, length)
            finally:
                os.close(fd)

    def fallocate(self, fh: int, mode: int, offset: int, length: int) -> None:
        with self.lock:
            h = self._handle(fh)
            if self.disk_full:
                raise _err(errno.ENOSPC)
            known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE
            if mode & ~known:
                raise _err(errno.EOPNOTSUPP, f"fallocate mode {mode:#x}")
            j = self._file_journal(h)
            if j is not None and mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
                cur = os.fstat(h.fd).st_size
                j.note_write(offset, length, cur, self._read_at(h.fd))
            _fallocate(h.fd, mode, offset, length)

    def fsync(self, fh: int, datasync: bool) -> None:
        with self.lock:
            h = self._handle(fh)
            self.files.pop(h.ino, None)  # durable from here on: the crash keeps it
            self.counters["fsyncs"] += 1
        # The backing file's own fsync gives the caller a real disk's latency.
        (os.fdatasync if datasync else os.fsync)(h.fd)

    def release(self, fh: int) -> None:
        with self.lock:
            h = self.handles.pop(fh, None)
            if h is None:
                return
            os.close(h.fd)
            self.open_count[h.ino] -= 1
            if self.open_count[h.ino] <= 0:
                del self.open_count[h.ino]
                self.dead.discard(h.ino)

    def getattr(self, path: str | None, fh: int | None) -> os.stat_result:
        h = None if fh is None else self.handles.get(fh)
        if h is not None:
            return os.fstat(h.fd)
        if path is None:
            raise _err(errno.ENOENT)
        return self._lstat(self._check(path))

    # ---- directories ---------------------------------------------------------------------

    def opendir(self, path: str) -> int:
        r = self._check(path)
        with self.lock:
            fd = os.open(r, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self.root_fd)
            return self._new_handle(fd, 0, is_dir=True)

    def readdir(self, fh: int) -> list[tuple[str, int, int]]:
        """(name, inode, file type bits) of each entry: with use_ino the kernel shows the
        inode as d_ino, and readdir(3) skips entries whose d_ino is 0."""
        with self.lock:
            h = self._handle(fh)
            with os.scandir(h.fd) as it:
                ents = [(e.name, e.inode(), _dtype(e)) for e in it]
            up = h.ino if h.ino == self.root_ino else os.stat("..", dir_fd=h.fd).st_ino
        if h.ino == self.root_ino:
            ents = [e for e in ents if e[0] != STATE_DIR]
        return [(".", h.ino, stat.S_IFDIR), ("..", up, stat.S_IFDIR), *ents]

    def fsyncdir(self, fh: int) -> None:
        with self.lock:
            h = self._handle(fh)
            self._drop_dir_journal(h.ino)
            self.counters["fsyncdirs"] += 1
        os.fsync(h.fd)

    def mkdir(self, path: str, mode: int, uid: int, gid: int) -> None:
        r = self._check_new(path)
        with self.lock:
            if self.disk_full:
                raise _err(errno.ENOSPC)
            self._journal_dir(os.path.dirname(r) or ".")
            os.mkdir(r, mode, dir_fd=self.root_fd)
            self._own(r, uid, gid)

    def rmdir(self, path: str) -> None:
        r = self._check(path)
        with self.lock:
            st = self._lstat(r)
            if not stat.S_ISDIR(st.st_mode):
                raise _err(errno.ENOTDIR, path)
            if self._listing(r):
                raise _err(errno.ENOTEMPTY, path)
            self._journal_dir(os.path.dirname(r) or ".")
            self._remove(r, st)

    def unlink(self, path: str) -> None:
        r = self._check(path)
        with self.lock:
            st = self._lstat(r)
            if stat.S_ISDIR(st.st_mode):
                raise _err(errno.EISDIR, path)
            self._journal_dir(os.path.dirname(r) or ".")
            self._remove(r, st)

    def rename(self, old: str, new: str) -> None:
        ro, rn = self._check(old), self._check_new(new)
        with self.lock:
            src = self._lstat(ro)
            try:
                dst: os.stat_result | None = self._lstat(rn)
            except FileNotFoundError:
                dst = None
            if dst is not None and dst.st_ino == src.st_ino:
                return  # two names of one inode: POSIX says do nothing
            # the order of Linux's checks, so errors are the ones a real file system gives
            if stat.S_ISDIR(src.st_mode) and (rn + "/").startswith(ro + "/"):
                raise _err(errno.EINVAL, f"{new} is inside {old}")
            if dst is not None and (ro + "/").startswith(rn + "/"):
                raise _err(errno.ENOTEMPTY, f"{old} is inside {new}")
            if dst is not None:
                src_dir, dst_dir = stat.S_ISDIR(src.st_mode), stat.S_ISDIR(dst.st_mode)
                if src_dir and not dst_dir:
                    raise _err(errno.ENOTDIR, new)
                if dst_dir and not src_dir:
                    raise _err(errno.EISDIR, new)
                if dst_dir and self._listing(rn):
                    raise _err(errno.ENOTEMPTY, new)
            self._journal_dir(os.path.dirname(ro) or ".")
            self._journal_dir(os.path.dirname(rn) or ".")
            if dst is None:
                os.rename(ro, rn, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
            else:
                self._remove(rn, dst, replace_by=ro)
            self.counters["renames"] += 1

    def link(self, target: str, source: str) -> None:
        """Hard link: new name `target` for the existing `source`."""
        rt, rs = self._check_new(target), self._check(source)
        with self.lock:
            if self.disk_full:
                raise _err(errno.ENOSPC)
            self._journal_dir(os.path.dirname(rt) or ".")
            os.link(rs, rt, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd, follow_symlinks=False)

    def symlink(self, path: str, target: str, uid: int, gid: int) -> None:
        r = self._check_new(path)
        with self.lock:
            if self.disk_full:
                raise _err(errno.ENOSPC)
            self._journal_dir(os.path.dirname(r) or ".")
            os.symlink(target, r, dir_fd=self.root_fd)
            self._own(r, uid, gid)

    def mknod(self, path: str, mode: int, dev: int, uid: int, gid: int) -> None:
        r = self._check_new(path)
        with self.lock:
            if self.disk_full:
                raise _err(errno.ENOSPC)
            self._journal_dir(os.path.dirname(r) or ".")
            os.mknod(r, mode, dev, dir_fd=self.root_fd)
            self._own(r, uid, gid)

    def readlink(self, path: str) -> str:
        return os.readlink(self._check(path), dir_fd=self.root_fd)

    # ---- attributes (durable at once) ----------------------------------------------------

    def chmod(self, path: str, mode: int) -> None:
        r = self._check(path)
        if stat.S_ISLNK(self._lstat(r).st_mode):
            raise _err(errno.EOPNOTSUPP, "chmod of a symlink")  # Linux has no lchmod
        os.chmod(r, mode, dir_fd=self.root_fd)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(self._check(path), uid, gid, dir_fd=self.root_fd, follow_symlinks=False)

    def utimens(self, path: str, atime_ns: int | None, mtime_ns: int | None) -> None:
        r = self._check(path)
        if atime_ns is None or mtime_ns is None:
            st = self._lstat(r)
            atime_ns = st.st_atime_ns if atime_ns is None else atime_ns
            mtime_ns = st.st_mtime_ns if mtime_ns is None else mtime_ns
        os.utime(r, ns=(atime_ns, mtime_ns), dir_fd=self.root_fd, follow_symlinks=False)

    def statfs(self) -> os.statvfs_result:
        return os.statvfs(self.root_fd)

    # ---- control -------------------------------------------------------------------------

    def set_disk_full(self, on: bool) -> None:
        with self.lock:
            self.disk_full = on

    def sync_all(self) -> dict[str, Any]:
        """Make everything durable (heal, teardown): journals and trash are dropped."""
        with self.lock:
            files, dirs = len(self.files), len(self.dirs)
            self.files.clear()
            self.dirs.clear()
            self.refs.clear()
            for ino, is_dir in self.trash.items():
                path = self.backing / TRASH / str(ino)
                shutil.rmtree(path) if is_dir else path.unlink()
            self.trash.clear()
            if _libc.syncfs(self.root_fd) != 0:
                raise _err(ctypes.get_errno(), "syncfs of the backing directory")
            self.counters["sync_alls"] += 1
            return {"files_synced": files, "dirs_synced": dirs}

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {
                "backing": str(self.backing),
                "metadata": self.metadata,
                "generation": self.gen,
                "disk_full": self.disk_full,
                "unsynced_files": len(self.files),
                "unsynced_bytes": sum(j.unsynced_bytes for j in self.files.values()),
                "saved_bytes": sum(j.saved_bytes for j in self.files.values()),
                "unsynced_dirs": len(self.dirs),
                "unsynced_dir_changes": sum(j.changes for j in self.dirs.values()),
                "trash": len(self.trash),
                "open_handles": len(self.handles),
                "counters": dict(self.counters),
            }
