"""The power loss: rebuild the backing directory as the durable state, dropping the rest.

Caller holds the layer's lock. Steps:

1. move every entry of the backing root into ``.faultfs/old`` (so the root can be rebuilt in
   place while the old tree is still there to link from);
2. index the old tree and the trash: inode -> a path naming it, directory -> its entries;
3. roll each journalled file back to its durable content (truncate to the durable size, put
   the saved durable bytes back); hard links share the inode, so every name sees it;
4. from the root down, lay out the durable entries: a directory's journal if it has one,
   else its current entries (unchanged since its last fsync); files and symlinks are
   hard-linked from the old tree (same inode), directories are made anew with the old
   one's mode, owner and times;
5. delete the old tree and the trash; clear the journals; bump the generation, so handles
   opened before the loss fail with EIO.

The per-directory model can name one directory from two parents (a rename across
directories with only one of them fsynced); it is laid out under both, and a cycle is cut
(logged). A real journalling file system never shows either; POSIX does not rule them out.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from dataclasses import dataclass, field
from typing import Any

from faultfs.journal import Entry
from faultfs.layer import STATE_DIR, TRASH, Layer

log = logging.getLogger(__name__)

OLD = f"{STATE_DIR}/old"
REPORT_PATHS = 50  # at most this many paths of each kind in the report


@dataclass
class _Index:
    path: dict[int, str] = field(default_factory=dict)  # inode -> a relative path naming it
    listing: dict[int, dict[str, Entry]] = field(default_factory=dict)  # dir inode -> entries
    dir_stat: dict[int, os.stat_result] = field(default_factory=dict)  # only directories
    live: set[str] = field(default_factory=set)  # paths (as the mount shows them) before


def _walk(layer: Layer, top: str, shown: str | None, idx: _Index, as_ino: int | None = None) -> None:
    """Index directory `top` (relative to the backing root); `shown` is its path in the
    mount (None inside the trash)."""
    st = os.lstat(top, dir_fd=layer.root_fd)
    ino = st.st_ino if as_ino is None else as_ino
    idx.path.setdefault(ino, top)
    idx.dir_stat[ino] = st
    ents: dict[str, Entry] = {}
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY, dir_fd=layer.root_fd)
    try:
        with os.scandir(fd) as it:
            found = [(e.name, e.inode(), e.is_dir(follow_symlinks=False)) for e in it]
    finally:
        os.close(fd)
    for name, e_ino, is_dir in found:
        ents[name] = Entry(e_ino, is_dir)
        child = f"{top}/{name}"
        child_shown = None if shown is None else f"{shown}/{name}".lstrip("/")
        if child_shown is not None:
            idx.live.add(child_shown + ("/" if is_dir else ""))
        if is_dir:
            _walk(layer, child, child_shown, idx)
        else:
            idx.path.setdefault(e_ino, child)
    idx.listing[ino] = ents


@dataclass
class _Layout:
    made: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    cycles: list[str] = field(default_factory=list)


def _lay_out(layer: Layer, idx: _Index, ino: int, target: str, ancestors: frozenset[int],
             out: _Layout) -> None:
    j = layer.dirs.get(ino)
    ents = j.entries if j is not None else idx.listing.get(ino, {})
    for name in sorted(ents):
        e = ents[name]
        dst = name if target == "." else f"{target}/{name}"
        src = idx.path.get(e.ino)
        if src is None or e.is_dir != (e.ino in idx.dir_stat):
            log.error("faultfs: durable entry %s names inode %d that is gone", dst, e.ino)
            out.missing.append(dst)
            continue
        if not e.is_dir:
            os.link(src, dst, src_dir_fd=layer.root_fd, dst_dir_fd=layer.root_fd,
                    follow_symlinks=False)
            out.made.add(dst)
            continue
        if e.ino in ancestors:
            log.warning("faultfs: durable directory %s would contain itself; left out", dst)
            out.cycles.append(dst)
            continue
        st = idx.dir_stat[e.ino]
        os.mkdir(dst, stat.S_IMODE(st.st_mode), dir_fd=layer.root_fd)
        os.chown(dst, st.st_uid, st.st_gid, dir_fd=layer.root_fd)
        os.chmod(dst, stat.S_IMODE(st.st_mode), dir_fd=layer.root_fd)  # chown clears setgid
        out.made.add(dst + "/")
        _lay_out(layer, idx, e.ino, dst, ancestors | {e.ino}, out)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=layer.root_fd)


def _roll_back_files(layer: Layer, idx: _Index) -> tuple[int, int]:
    files = lost = 0
    for ino, j in layer.files.items():
        src = idx.path.get(ino)
        if src is None:
            continue  # no name left anywhere: nothing of it survives
        fd = os.open(src, os.O_WRONLY | os.O_NOFOLLOW, dir_fd=layer.root_fd)
        try:
            cur = os.fstat(fd).st_size
            os.ftruncate(fd, j.durable_size)
            for start, chunk in j.saved():
                os.pwrite(fd, chunk, start)
        finally:
            os.close(fd)
        files += 1
        lost += max(0, cur - j.durable_size) + j.saved_bytes
    return files, lost


def lose_unsynced(layer: Layer) -> dict[str, Any]:
    """Drop everything not durable. Caller holds layer.lock."""
    root = layer.root_fd
    os.mkdir(OLD, 0o700, dir_fd=root)
    for name in os.listdir(root):
        if name != STATE_DIR:
            os.rename(name, f"{OLD}/{name}", src_dir_fd=root, dst_dir_fd=root)
    idx = _Index()
    _walk(layer, OLD, "", idx, as_ino=layer.root_ino)
    _walk(layer, TRASH, None, idx)
    files, lost_bytes = _roll_back_files(layer, idx)
    out = _Layout()
    _lay_out(layer, idx, layer.root_ino, ".", frozenset({layer.root_ino}), out)

    shutil.rmtree(layer.backing / OLD)
    shutil.rmtree(layer.backing / TRASH)
    os.mkdir(TRASH, 0o700, dir_fd=root)
    dirs, trashed = len(layer.dirs), len(layer.trash)
    layer.files.clear()
    layer.dirs.clear()
    layer.refs.clear()
    layer.trash.clear()
    layer.dead.clear()
    layer.gen += 1
    layer.counters["power_losses"] += 1
    gone = sorted(idx.live - out.made)
    back = sorted(out.made - idx.live)
    return {
        "generation": layer.gen,
        "files_rolled_back": files,
        "bytes_lost": lost_bytes,
        "dirs_rolled_back": dirs,
        "trash_entries": trashed,
        "paths_lost": gone[:REPORT_PATHS],
        "paths_lost_count": len(gone),
        "paths_restored": back[:REPORT_PATHS],
        "paths_restored_count": len(back),
        "missing": out.missing,
        "cycles": out.cycles,
    }
