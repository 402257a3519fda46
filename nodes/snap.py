"""Snapshot files: the key-value state at an applied index, as JSON written atomically.

``snap/snap-<index>.json`` holds ``{"format", "index", "term", "voters", "learners", "removed",
"crc", "data"}`` where ``data`` is the state machine's own JSON text and ``crc`` the
zlib.crc32 of the metadata and the data (format 2; format 1 checksummed the data only). A file
is written to a temporary name, fsynced, renamed, and the directory fsynced, so a crash leaves
either the old set of snapshots or the new one, never half a file under a final name.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from nodes.fsutil import fsync_dir, mkdir_durable

log = logging.getLogger(__name__)

KEEP = 2  # snapshot files kept; older ones are removed after a newer one is durable


class SnapshotCorrupt(Exception):
    """A snapshot file under its final name that does not parse or check out."""


@dataclass(frozen=True)
class SnapshotFile:
    index: int
    term: int
    voters: tuple[int, ...]
    learners: tuple[int, ...]
    data: bytes
    removed: dict[int, int] = field(default_factory=dict)  # id -> term removed (nodes/peerfilter.py)


def _name(index: int) -> str:
    return f"snap-{index:016d}.json"


def list_snapshots(snap_dir: Path) -> list[Path]:
    files = [p for p in snap_dir.glob("snap-*.json") if p.name[5:-5].isdigit()]
    return sorted(files, key=lambda p: int(p.name[5:-5]))


FORMAT = 2  # 1: "crc" covered the data only


def checksum(s: SnapshotFile) -> int:
    """zlib.crc32 over everything the file says: the membership (and index and term) too,
    as etcd's snapshot checksum covers the whole raftpb.Snapshot with its ConfState."""
    meta = json.dumps([s.index, s.term, list(s.voters), list(s.learners), sorted(s.removed.items())])
    return zlib.crc32(s.data, zlib.crc32(meta.encode() + b"\n"))


def save(snap_dir: Path, s: SnapshotFile, sync_data: bool = True) -> Path:
    """Write s durably under its final name. sync_data=False is the seeded bug
    snapshot-rename-before-fsync (nodes/bugs.py): renamed into place, data never fsynced."""
    mkdir_durable(snap_dir)  # the first snapshot makes snap/: durable before the WAL names it
    text = s.data.decode()
    body = {
        "format": FORMAT,
        "index": s.index,
        "term": s.term,
        "voters": list(s.voters),
        "learners": list(s.learners),
        "removed": {str(k): v for k, v in sorted(s.removed.items())},
        "crc": checksum(s),
        "data": text,
    }
    final = snap_dir / _name(s.index)
    tmp = snap_dir / (final.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(body).encode())
        if sync_data:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(snap_dir)
    for old in list_snapshots(snap_dir)[:-KEEP]:
        old.unlink(missing_ok=True)
    return final


def load(path: Path) -> SnapshotFile:
    try:
        body = json.loads(path.read_text())
        data = body["data"].encode()
        sf = SnapshotFile(
            index=int(body["index"]),
            term=int(body["term"]),
            voters=tuple(int(v) for v in body["voters"]),
            learners=tuple(int(v) for v in body["learners"]),
            data=data,
            removed={int(k): int(v) for k, v in body.get("removed", {}).items()},
        )
    except (ValueError, KeyError, TypeError, UnicodeError, RecursionError, AttributeError) as e:
        raise SnapshotCorrupt(f"{path}: unreadable snapshot ({e})") from e
    if body.get("format") == FORMAT:
        if checksum(sf) != body["crc"]:
            raise SnapshotCorrupt(f"{path}: checksum mismatch")
    elif zlib.crc32(data) != body["crc"]:
        raise SnapshotCorrupt(f"{path}: checksum mismatch")
    else:
        log.warning("snap: %s predates checksummed membership; its voters and learners are unchecked", path)
    return sf


def load_newest(snap_dir: Path) -> SnapshotFile | None:
    """The newest snapshot, or None; stray temporary files from a crash are removed."""
    if not snap_dir.exists():
        return None
    for tmp in snap_dir.glob("*.tmp"):
        log.warning("snap: removing unfinished %s", tmp)
        tmp.unlink(missing_ok=True)
    files = list_snapshots(snap_dir)
    return load(files[-1]) if files else None
