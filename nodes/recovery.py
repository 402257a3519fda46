"""Recovery on start: newest snapshot file + WAL replay into a MemoryStorage.

Also owns the boot counter (``DATA_DIR/boot``), incremented durably on every start so that
events of different incarnations of a node can be told apart.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from nodes import snap
from nodes.fsutil import fsync_dir
from nodes.raft import (
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Snapshot,
    SnapshotMetadata,
    codec,
)
from nodes.wal import WAL, Recovered, WalCorrupt, WalEntry, list_segments

log = logging.getLogger(__name__)


class RecoveryError(Exception):
    """The data directory cannot be trusted (corruption before the tail, missing snapshot)."""


class DataDirBusy(RecoveryError):
    """Another raftkv process holds the data directory: nothing is wrong with the data."""


@dataclass
class DiskState:
    storage: MemoryStorage
    wal: WAL
    hard_state: HardState
    conf_state: ConfState  # as of the snapshot (the RawNode re-applies what follows)
    boot_conf: ConfState  # as of the recovered commit index, for the boot event
    removed: dict[int, int]  # members removed (id -> term), as of the recovered commit index
    snapshot_index: int
    snapshot_term: int
    kv_data: bytes  # state machine at snapshot_index (b"" = empty)
    fresh: bool  # nothing on disk: a brand-new member
    torn_bytes: int


def lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive lock on DATA_DIR/lock for the life of the process (two nodes on one
    data dir would corrupt it); returns the descriptor, which must stay open."""
    fd = os.open(data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        raise DataDirBusy(f"{data_dir} is in use by another raftkv process") from e
    return fd


def peek_boot(data_dir: Path) -> int:
    """The number the next boot will have (for a start that is refused before it counts)."""
    try:
        text = (data_dir / "boot").read_text().strip()
    except OSError:
        return 1
    return int(text) + 1 if text.isdigit() else 1


def next_boot(data_dir: Path) -> int:
    path = data_dir / "boot"
    boot = 1
    if path.exists():
        text = path.read_text().strip()
        if not text.isdigit():
            raise RecoveryError(f"{path}: boot counter is not a number ({text[:20]!r})")
        boot = int(text) + 1
    tmp = data_dir / "boot.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{boot}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(data_dir)
    return boot


def _live_entries(rec: Recovered, snap_index: int, snap_term: int) -> list[WalEntry]:
    """Entries after the snapshot, provided they continue it (else raft discarded them)."""
    ents = rec.entries
    if not ents or ents[-1].index <= snap_index:
        return []
    if ents[0].index > snap_index + 1:
        raise RecoveryError(
            f"wal: entries start at {ents[0].index} but the newest snapshot is at {snap_index}"
        )
    if ents[0].index <= snap_index:
        at = ents[snap_index - ents[0].index]
        if snap_index > 0 and at.term != snap_term:
            return []  # a snapshot installed over a conflicting log: raft dropped that log
        return ents[snap_index - ents[0].index + 1 :]
    return ents


def committed_conf(
    conf: ConfState, ents: list[WalEntry], commit: int, removed: dict[int, int] | None = None
) -> ConfState:
    """The membership after the committed conf changes in ents (simple, one at a time);
    `removed` (id -> term of its removal) is updated along."""
    removed = {} if removed is None else removed
    voters = set(conf.voters)
    learners = set(conf.learners)
    for e in ents:
        if e.index > commit:
            break
        if e.type != EntryType.CONF_CHANGE:
            continue
        try:
            cc = codec.decode_conf_change(e.data)
        except ValueError:
            continue  # skipped when applied, too (Node._apply_conf)
        if cc.type == ConfChangeType.ADD_NODE:
            voters.add(cc.node_id)
            learners.discard(cc.node_id)
            removed.pop(cc.node_id, None)
        elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
            if cc.node_id not in voters:  # a voter is never demoted (nodes/raft/confchange.py)
                learners.add(cc.node_id)
            removed.pop(cc.node_id, None)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            voters.discard(cc.node_id)
            learners.discard(cc.node_id)
            removed[cc.node_id] = e.term
    return ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))


LOST = "its votes and acknowledged entries are lost; refusing to start (wipe the data dir and add the node again)"


def _check_wal_exists(data_dir: Path) -> None:
    """Refuse a data dir that ran before but whose WAL is gone or emptied: starting empty (or
    from the snapshot alone) would forget its vote and the entries it acknowledged, so it
    could vote twice in a term. etcd refuses likewise: a member with a data dir but no WAL
    "has already been bootstrapped". The WAL is created, its first segment header fsynced,
    before the boot counter is first written (Node), so a counter without one means loss."""
    wal_dir = data_dir / "wal"
    segs = list_segments(wal_dir) if wal_dir.is_dir() else []
    if any(p.stat().st_size > 0 for p in segs):
        return
    if (data_dir / "boot").exists():
        raise RecoveryError(f"{data_dir} ran before (boot counter) but {wal_dir} holds no log: {LOST}")
    if snap.list_snapshots(data_dir / "snap") if (data_dir / "snap").is_dir() else []:
        raise RecoveryError(f"{data_dir / 'snap'} has a snapshot but {wal_dir} holds no log: {LOST}")


def recover(data_dir: Path, check_crc: bool = True) -> DiskState:
    """check_crc=False is the seeded bug skip-wal-crc (nodes/bugs.py)."""
    _check_wal_exists(data_dir)
    wal = WAL(data_dir / "wal", check_crc=check_crc)
    try:
        rec = wal.open()
    except WalCorrupt as e:
        raise RecoveryError(f"wal corrupt: {e}") from e
    try:
        sf = snap.load_newest(data_dir / "snap")
    except snap.SnapshotCorrupt as e:
        raise RecoveryError(str(e)) from e
    if sf is not None and rec.reaches < sf.index:
        # a node's own snapshot covers only entries its WAL held (made durable before they
        # were applied), and segments go only once a marker covers them (etcd: the WAL must
        # hold the snapshot's record, ErrSnapshotNotFound)
        wal.close()
        raise RecoveryError(f"wal reaches index {rec.reaches} but the newest snapshot is at {sf.index}: {LOST}")
    if sf is None and rec.snapshot.index > 0:
        raise RecoveryError(f"wal names snapshot {rec.snapshot.index} but {data_dir / 'snap'} has none")
    if sf is not None and sf.index < rec.snapshot.index:
        raise RecoveryError(
            f"wal names snapshot {rec.snapshot.index} but the newest file is at {sf.index}"
        )
    storage = MemoryStorage()
    snap_index = snap_term = 0
    conf = ConfState()
    kv_data = b""
    removed: dict[int, int] = {}
    if sf is not None:
        snap_index, snap_term = sf.index, sf.term
        conf = ConfState(voters=sf.voters, learners=sf.learners)
        kv_data = sf.data
        removed = dict(sf.removed)
        storage.apply_snapshot(
            Snapshot(data=sf.data, metadata=SnapshotMetadata(conf_state=conf, index=sf.index, term=sf.term))
        )
    ents = _live_entries(rec, snap_index, snap_term)
    if ents:
        storage.append([Entry(e.term, e.index, EntryType(e.type), e.data) for e in ents])
    whs = rec.hard_state
    last = ents[-1].index if ents else snap_index
    # the snapshot only holds committed state; a crash between the snapshot file and the
    # hard state record can leave the recorded commit behind it
    commit = min(max(whs.commit, snap_index), last)
    hs = HardState(term=max(whs.term, snap_term), vote=whs.vote, commit=commit)
    if not hs.is_empty():
        storage.set_hard_state(hs)
    fresh = sf is None and not ents and hs.is_empty()
    return DiskState(
        storage=storage,
        wal=wal,
        hard_state=hs,
        conf_state=conf,
        boot_conf=committed_conf(conf, ents, commit, removed),
        removed=removed,
        snapshot_index=snap_index,
        snapshot_term=snap_term,
        kv_data=kv_data,
        fresh=fresh,
        torn_bytes=rec.torn_bytes,
    )
