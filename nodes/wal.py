"""Write-ahead log: hard states, entries and snapshot markers in checksummed segment files.

Record layout (little-endian): ``length u32 | crc32 u32 | type u8 | payload``, where the CRC
(zlib.crc32) covers the length, the type and the payload, so a corrupted length is caught too.
Segments are ``wal-<seq>.log``; each new segment starts with the current hard state and the
latest snapshot marker, so older segments can be deleted once a snapshot covers their entries.

Recovery follows etcd's wal package (ReadAll, decoder, Repair) where it applies. A torn tail
of the last segment -- a record that runs past the end of the file (a crash mid-write), a
zero-filled tail (preallocated space, or writes that never reached the disk: etcd reads a zero
length as the end of the log), or a record whose checksum fails and one of whose 512-byte
sectors is all zeros (etcd's isTornEntry) -- is truncated with a warning, provided no valid
record follows it. Anything else is corruption and recovery refuses to continue: a complete
last record whose checksum fails otherwise (etcd: ErrCRCMismatch, never repaired), a bad
record before the tail, a torn record in an older segment, a segment missing from the
sequence (etcd: "file sequence numbers do not increase continuously").
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nodes.fsutil import fsync_dir, mkdir_durable

log = logging.getLogger(__name__)

REC_HARD_STATE = 1
REC_ENTRY = 2
REC_SNAPSHOT = 3

SNAP_LOCAL = 0  # local compaction: the log after the snapshot index stays
SNAP_INSTALL = 1  # snapshot installed from the leader: the whole previous log is discarded

HEADER = struct.Struct("<IIB")
HS = struct.Struct("<QQQ")
ENTRY_HEAD = struct.Struct("<QQB")
SNAP = struct.Struct("<QQB")
MAX_RECORD = 256 << 20  # a length above this is corruption, never a torn write
SEGMENT_BYTES = 8 << 20
SECTOR = 512  # the unit a torn write leaves zero-filled (etcd's minSectorSize)


class WalCorrupt(Exception):
    """Corruption before the tail of the log: refuse to serve from it."""


class HardStateLike(Protocol):
    @property
    def term(self) -> int: ...
    @property
    def vote(self) -> int: ...
    @property
    def commit(self) -> int: ...


class EntryLike(Protocol):
    @property
    def term(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def data(self) -> bytes: ...


@dataclass(frozen=True)
class WalEntry:
    term: int
    index: int
    type: int
    data: bytes


@dataclass(frozen=True)
class WalHardState:
    term: int = 0
    vote: int = 0
    commit: int = 0


@dataclass(frozen=True)
class WalSnapshot:
    index: int = 0
    term: int = 0
    kind: int = SNAP_LOCAL


@dataclass
class Recovered:
    """What replaying the log yields: the newest hard state, marker and the live entries."""

    hard_state: WalHardState = field(default_factory=WalHardState)
    snapshot: WalSnapshot = field(default_factory=WalSnapshot)
    entries: list[WalEntry] = field(default_factory=list)
    torn_bytes: int = 0
    reaches: int = 0  # the highest index any record names (entry, or snapshot marker)


def encode_record(rtype: int, payload: bytes) -> bytes:
    head = struct.pack("<IB", len(payload), rtype)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return HEADER.pack(len(payload), crc, rtype) + payload


def encode_hard_state(hs: HardStateLike) -> bytes:
    return encode_record(REC_HARD_STATE, HS.pack(hs.term, hs.vote, hs.commit))


def encode_entry(e: EntryLike) -> bytes:
    return encode_record(REC_ENTRY, ENTRY_HEAD.pack(e.term, e.index, int(e.type)) + e.data)


def encode_snapshot_marker(s: WalSnapshot) -> bytes:
    return encode_record(REC_SNAPSHOT, SNAP.pack(s.index, s.term, s.kind))


def _segment_seq(p: Path) -> int:
    return int(p.name[len("wal-") : -len(".log")])


def list_segments(wal_dir: Path) -> list[Path]:
    segs = [p for p in wal_dir.glob("wal-*.log") if p.name[4:-4].isdigit()]
    return sorted(segs, key=_segment_seq)


@dataclass
class _Replay:
    """Accumulates records in log order; applies overwrite and snapshot semantics."""

    rec: Recovered = field(default_factory=Recovered)
    max_index: int = 0

    def hard_state(self, payload: bytes, where: str) -> None:
        if len(payload) != HS.size:
            raise WalCorrupt(f"{where}: hard state record has {len(payload)} bytes")
        self.rec.hard_state = WalHardState(*HS.unpack(payload))

    def snapshot(self, payload: bytes, where: str) -> None:
        if len(payload) != SNAP.size:
            raise WalCorrupt(f"{where}: snapshot marker has {len(payload)} bytes")
        s = WalSnapshot(*SNAP.unpack(payload))
        if s.index <= self.rec.snapshot.index:
            return  # a segment header repeating a marker already replayed
        ents = self.rec.entries
        if s.kind == SNAP_INSTALL:
            ents.clear()
        else:
            self.rec.entries = [e for e in ents if e.index > s.index]
        self.rec.snapshot = s

    def entry(self, payload: bytes, where: str) -> None:
        if len(payload) < ENTRY_HEAD.size:
            raise WalCorrupt(f"{where}: entry record has {len(payload)} bytes")
        term, index, etype = ENTRY_HEAD.unpack_from(payload)
        e = WalEntry(term, index, etype, payload[ENTRY_HEAD.size :])
        self.max_index = max(self.max_index, index)
        base = self.rec.snapshot.index
        if index <= base:
            return
        ents = self.rec.entries
        if ents and index <= ents[-1].index:
            # a new leader overwrote a conflicting suffix: drop it, as raft did
            del ents[index - ents[0].index :]
        expected = ents[-1].index + 1 if ents else None
        if expected is not None and index != expected:
            raise WalCorrupt(f"{where}: entry index {index} after {expected - 1} (gap)")
        ents.append(e)


def _replay_segment(path: Path, replay: _Replay, last: bool, check_crc: bool = True) -> int:
    """Replay one segment; returns the number of torn bytes cut from its tail (last only).
    check_crc=False is the seeded bug skip-wal-crc (nodes/bugs.py)."""
    data = path.read_bytes()
    off = 0
    size = len(data)
    written = len(data.rstrip(b"\0"))  # the zero-filled tail starts here
    while off < size:
        where = f"{path}@{off}"
        if off >= written:
            return _torn(path, off, size, last, "zero-filled tail")
        if size - off < HEADER.size:
            return _torn(path, off, size, last, "short header")
        length, crc, rtype = HEADER.unpack_from(data, off)
        if length > MAX_RECORD:
            raise WalCorrupt(f"{where}: record length {length} is impossible")
        end = off + HEADER.size + length
        if end > size:
            if _valid_record_after(data, off, written):
                # a torn write leaves nothing valid behind it: the length itself is corrupt
                raise WalCorrupt(f"{where}: record length {length} is corrupt (valid records follow)")
            return _torn(path, off, size, last, "record runs past end of file")
        payload = data[off + HEADER.size : end]
        head = struct.pack("<IB", length, rtype)
        if check_crc and zlib.crc32(payload, zlib.crc32(head)) != crc:
            zeroed = written < end < size or _has_zero_sector(data, off, end)
            if zeroed and not _valid_record_after(data, off, written):
                return _torn(path, off, size, last, "checksum mismatch in a zero-filled record")
            if end == size:
                raise WalCorrupt(
                    f"{where}: checksum mismatch in the last record, which is complete and has no "
                    "zero-filled sector: corruption, not a torn write"
                )
            raise WalCorrupt(f"{where}: checksum mismatch before the tail of the log")
        if rtype == REC_HARD_STATE:
            replay.hard_state(payload, where)
        elif rtype == REC_ENTRY:
            replay.entry(payload, where)
        elif rtype == REC_SNAPSHOT:
            replay.snapshot(payload, where)
        else:
            raise WalCorrupt(f"{where}: unknown record type {rtype}")
        off = end
    return 0


def _has_zero_sector(data: bytes, start: int, end: int) -> bool:
    """Whether data[start:end], cut at the file's sector boundaries, has an all-zero piece."""
    pos = start
    while pos < end:
        cut = min(end, (pos // SECTOR + 1) * SECTOR)
        if not data[pos:cut].strip(b"\0"):
            return True
        pos = cut
    return False


def _valid_record_after(data: bytes, off: int, written: int) -> bool:
    size = len(data)
    for p in range(off + 1, min(size - HEADER.size, written) + 1):
        length, crc, rtype = HEADER.unpack_from(data, p)
        if rtype not in (REC_HARD_STATE, REC_ENTRY, REC_SNAPSHOT):
            continue
        end = p + HEADER.size + length
        if end > size:
            continue
        head = struct.pack("<IB", length, rtype)
        if zlib.crc32(data[p + HEADER.size : end], zlib.crc32(head)) == crc:
            return True
    return False


def _torn(path: Path, off: int, size: int, last: bool, why: str) -> int:
    if not last:
        raise WalCorrupt(f"{path}@{off}: {why} in a segment that is not the last")
    log.warning("wal: torn record at %s@%d (%s): truncating %d bytes", path, off, why, size - off)
    with open(path, "r+b") as f:
        f.truncate(off)
        f.flush()
        os.fsync(f.fileno())
    return size - off


def check_sequence(segs: list[Path]) -> None:
    """Segments are numbered consecutively; older ones are only ever deleted from the front."""
    for a, b in zip(segs, segs[1:], strict=False):
        if _segment_seq(b) != _segment_seq(a) + 1:
            gap = a.with_name(f"wal-{_segment_seq(a) + 1:016d}.log")
            raise WalCorrupt(f"{gap} is missing (segments do not follow each other)")


class WAL:
    """Append-only log owned by the node loop thread (not thread-safe by design)."""

    def __init__(self, wal_dir: Path, segment_bytes: int = SEGMENT_BYTES, check_crc: bool = True) -> None:
        self.dir = wal_dir
        self.segment_bytes = segment_bytes
        self.check_crc = check_crc  # False only for the seeded bug skip-wal-crc
        self.fsyncs = 0
        self._seg_max: dict[int, int] = {}  # segment seq -> highest entry index written in it
        self._fd = -1
        self._seq = 0
        self._size = 0
        self._hs = WalHardState()
        self._snap = WalSnapshot()

    def open(self) -> Recovered:
        """Replay every segment, truncate a torn tail, and open the last one for appends."""
        # wal/ itself must be durable before anything in it is: fsync its parent too
        mkdir_durable(self.dir)
        segs = list_segments(self.dir)
        check_sequence(segs)
        replay = _Replay()
        torn = 0
        for i, p in enumerate(segs):
            replay.max_index = 0
            torn += _replay_segment(p, replay, last=i == len(segs) - 1, check_crc=self.check_crc)
            self._seg_max[_segment_seq(p)] = replay.max_index
        rec = replay.rec
        rec.torn_bytes = torn
        rec.reaches = max([rec.snapshot.index, *self._seg_max.values()])
        self._hs = rec.hard_state
        self._snap = rec.snapshot
        if segs:
            self._seq = _segment_seq(segs[-1])
            self._fd = os.open(segs[-1], os.O_WRONLY | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size
            if self._size == 0:
                # created, then a crash before its header: write the header now, so the
                # segment can stand alone once the older ones are released
                log.warning("wal: %s is empty (a crash while starting it); writing its header", segs[-1])
                self._write_header()
        else:
            self._new_segment(1)
        return rec

    def _path(self, seq: int) -> Path:
        return self.dir / f"wal-{seq:016d}.log"

    def _new_segment(self, seq: int) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            self.fsyncs += 1
            os.close(self._fd)
        self._seq = seq
        self._fd = os.open(self._path(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._seg_max[seq] = 0
        self._size = 0
        self._write_header()
        fsync_dir(self.dir)
        self.fsyncs += 1

    def _write_header(self) -> None:
        """The segment header repeats the state older segments held, so they can go."""
        marker = WalSnapshot(self._snap.index, self._snap.term, SNAP_LOCAL)
        self._write(encode_hard_state(self._hs) + encode_snapshot_marker(marker))
        os.fsync(self._fd)
        self.fsyncs += 1

    @property
    def snapshot_index(self) -> int:
        """Index of the newest snapshot marker written."""
        return self._snap.index

    def save(self, hs: HardStateLike | None, entries: Sequence[EntryLike]) -> None:
        """Append entries then the hard state in one write; call sync() to make them durable."""
        if self._size >= self.segment_bytes:
            self._new_segment(self._seq + 1)
        parts = [encode_entry(e) for e in entries]
        if hs is not None:
            self._hs = WalHardState(hs.term, hs.vote, hs.commit)
            parts.append(encode_hard_state(self._hs))
        if not parts:
            return
        buf = b"".join(parts)
        self._write(buf)
        if entries:
            self._seg_max[self._seq] = max(self._seg_max.get(self._seq, 0), entries[-1].index)

    def save_snapshot(self, snap: WalSnapshot, sync: bool = True) -> None:
        """Record that a snapshot file up to snap.index is durable (call after saving it).

        A local compaction may skip the fsync: recovery starts from the newest snapshot file
        whether or not its marker survived, and release_to syncs before deleting anything."""
        self._snap = snap
        self._write(encode_snapshot_marker(snap))
        if sync:
            self.sync()

    def _write(self, buf: bytes) -> None:
        n = os.write(self._fd, buf)
        while n < len(buf):  # regular files rarely short-write, but be exact
            n += os.write(self._fd, buf[n:])
        self._size += len(buf)

    def sync(self) -> None:
        os.fsync(self._fd)
        self.fsyncs += 1

    def release_to(self, index: int) -> list[Path]:
        """Delete the oldest segments (never the current one) whose entries are all <= index.

        The current segment is not rolled over for this: a compaction every few hundred
        entries would otherwise cost a new segment and three more fsyncs each time, stalling
        the node loop (segments still roll at segment_bytes, and are released then)."""
        doomed = []
        for seq in sorted(self._seg_max):
            if seq == self._seq or self._seg_max[seq] > index:
                break
            doomed.append(seq)
        if not doomed:
            return []
        self.sync()  # the snapshot marker is on disk before the entries it covers go
        removed: list[Path] = []
        for seq in doomed:
            p = self._path(seq)
            p.unlink(missing_ok=True)
            del self._seg_max[seq]
            removed.append(p)
        fsync_dir(self.dir)
        return removed

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
