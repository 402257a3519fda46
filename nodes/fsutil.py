"""Making names durable: a new file, directory or rename reaches the disk only once the
directory holding it is fsynced (POSIX; etcd's fileutil and wal.Create do the same)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mkdir_durable(path: Path) -> bool:
    """Create `path` and any missing parents, fsyncing the parent of each directory made, so
    that a power failure cannot take the new directory (and what is later fsynced in it)
    away. Returns whether anything was created."""
    missing: list[Path] = []
    p = path
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise
            continue  # made meanwhile by someone else, who makes it durable
        fsync_dir(d.parent)
    return bool(missing)
