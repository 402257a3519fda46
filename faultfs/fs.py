"""The FUSE side: mfusepy callbacks mapped onto faultfs.layer.Layer, and the mount itself.

Kernel caching is set up so that a power loss is seen at once: entry, attribute and negative
lookup timeouts are 0 (as LazyFS sets them; a WAL's write + fsync costs no extra request for
it, measured), open files do not keep the page cache across opens, and the kernel's
write-back cache stays off (it would hold unsynced writes where faultfs cannot drop them).
``hard_remove`` with ``nullpath_ok`` keeps libfuse from renaming unlinked open files to
``.fuse_hidden*`` (such a rename would be a namespace change of its own).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # mfusepy prefers libfuse 2 if both exist
import mfusepy  # noqa: E402

from faultfs.layer import Layer  # noqa: E402

log = logging.getLogger(__name__)

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


class FaultFS(mfusepy.Operations):
    use_ns = True
    flag_nopath = True
    flag_nullpath_ok = True

    def __init__(self, layer: Layer, on_init: Callable[[], None] | None = None,
                 on_destroy: Callable[[], None] | None = None) -> None:
        self.layer = layer
        self._on_init = on_init
        self._on_destroy = on_destroy
        self.served = False  # the kernel connected: the mount was up

    # ---- lifecycle -----------------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        if config is not None:
            config.entry_timeout = 0.0
            config.attr_timeout = 0.0
            config.negative_timeout = 0.0
            config.hard_remove = 1
            config.use_ino = 1  # the backing inode numbers: hard links share one, as on disk
            config.nullpath_ok = 1
            config.kernel_cache = 0
            config.auto_cache = 0
        self.served = True
        if self._on_init is not None:
            self._on_init()

    def destroy(self, path: str) -> None:
        if self._on_destroy is not None:
            self._on_destroy()

    # ---- attributes ----------------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        st = self.layer.getattr(path, fh)
        return {
            "st_ino": st.st_ino,
            "st_mode": st.st_mode,
            "st_nlink": st.st_nlink,
            "st_uid": st.st_uid,
            "st_gid": st.st_gid,
            "st_size": st.st_size,
            "st_rdev": st.st_rdev,
            "st_blocks": st.st_blocks,
            "st_blksize": st.st_blksize,
            "st_atime": st.st_atime_ns,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
        }

    def chmod(self, path: str | None, mode: int) -> int:
        if path is None:
            raise OSError(errno.ENOENT, "chmod of an unlinked file")
        self.layer.chmod(path, mode)
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        if path is None:
            raise OSError(errno.ENOENT, "chown of an unlinked file")
        self.layer.chown(path, uid, gid)
        return 0

    def utimens(self, path: str | None, times: tuple[int | None, int | None]) -> int:
        """times: (atime, mtime) in ns, None to leave one as it is (see _FUSE)."""
        if path is None:
            raise OSError(errno.ENOENT, "utimens of an unlinked file")
        self.layer.utimens(path, times[0], times[1])
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = self.layer.statfs()
        full = self.layer.disk_full
        return {
            "f_bsize": sv.f_bsize,
            "f_frsize": sv.f_frsize,
            "f_blocks": sv.f_blocks,
            "f_bfree": 0 if full else sv.f_bfree,
            "f_bavail": 0 if full else sv.f_bavail,
            "f_files": sv.f_files,
            "f_ffree": sv.f_ffree,
            "f_favail": sv.f_favail,
            "f_namemax": sv.f_namemax,
        }

    # ---- files ---------------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        return self.layer.open(path, flags)

    def create(self, path: str, mode: int, flags: int) -> int:
        uid, gid, _ = mfusepy.fuse_get_context()
        return self.layer.create(path, mode, flags, uid, gid)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        return self.layer.read(fh, size, offset)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        return self.layer.write(fh, data, offset)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        self.layer.truncate(path, length, fh)
        return 0

    def fallocate(self, path: str | None, mode: int, offset: int, size: int, fh: int) -> int:
        self.layer.fallocate(fh, mode, offset, size)
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0  # close() promises nothing about durability

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        self.layer.fsync(fh, bool(datasync))
        return 0

    def release(self, path: str | None, fh: int) -> int:
        self.layer.release(fh)
        return 0

    def unlink(self, path: str) -> int:
        self.layer.unlink(path)
        return 0

    def rename(self, old: str, new: str) -> int:
        self.layer.rename(old, new)
        return 0

    def link(self, target: str, source: str) -> int:
        self.layer.link(target, source)
        return 0

    def symlink(self, target: str, source: str) -> int:
        uid, gid, _ = mfusepy.fuse_get_context()
        self.layer.symlink(target, source, uid, gid)
        return 0

    def readlink(self, path: str) -> str:
        return self.layer.readlink(path)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        uid, gid, _ = mfusepy.fuse_get_context()
        self.layer.mknod(path, mode, dev, uid, gid)
        return 0

    # ---- directories ---------------------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> int:
        uid, gid, _ = mfusepy.fuse_get_context()
        self.layer.mkdir(path, mode, uid, gid)
        return 0

    def rmdir(self, path: str) -> int:
        self.layer.rmdir(path)
        return 0

    def opendir(self, path: str) -> int:
        return self.layer.opendir(path)

    def readdir(self, path: str | None, fh: int) -> list[Any]:
        return [(name, {"st_ino": ino, "st_mode": kind}, 0)
                for name, ino, kind in self.layer.readdir(fh)]

    def releasedir(self, path: str | None, fh: int) -> int:
        self.layer.release(fh)
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        self.layer.fsyncdir(fh)
        return 0


class _FUSE(mfusepy.FUSE):
    """Fixes over mfusepy 3.1's libfuse 3 callbacks: truncate gets the open file's handle
    (ftruncate of an unlinked open file has no path); utimens sees UTIME_NOW / UTIME_OMIT
    (mfusepy adds tv_nsec to tv_sec, which libfuse leaves unset for them); rename refuses
    the renameat2 flags it would otherwise ignore (RENAME_NOREPLACE would replace)."""

    def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
        fh = fip.contents.fh if fip else None
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        return int(self.operations.truncate(decoded, length, fh))

    def utimens_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        now = time.time_ns()
        if not buf:
            times: tuple[int | None, int | None] = (now, now)
        else:
            def ns(ts: Any) -> int | None:  # libfuse passes UTIME_NOW / UTIME_OMIT through
                if ts.tv_nsec == UTIME_NOW:
                    return now
                if ts.tv_nsec == UTIME_OMIT:
                    return None
                return int(ts.tv_sec) * 10**9 + int(ts.tv_nsec)

            times = (ns(buf.contents.actime), ns(buf.contents.modtime))
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        return int(self.operations.utimens(decoded, times))

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        if flags:
            return -errno.EINVAL
        return int(self.rename_fuse_2(old, new))


def mount(ops: FaultFS, mountpoint: str, debug: bool = False) -> None:
    """Serve until unmounted or signalled (SIGINT, SIGTERM, SIGHUP). With auto_unmount,
    fusermount3 unmounts the file system if this process dies, even by SIGKILL."""
    _FUSE(
        ops,
        mountpoint,
        foreground=True,
        debug=debug,
        nothreads=False,
        allow_other=True,
        default_permissions=True,
        auto_unmount=True,
        fsname=f"faultfs:{ops.layer.backing}",
        subtype="faultfs",
    )
