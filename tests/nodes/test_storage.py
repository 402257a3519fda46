"""Snapshot files, recovery of snapshot + log into MemoryStorage, the state machine, protocol."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodes import fsutil, snap, wal
from nodes.kv import KVStore
from nodes.protocol import (
    ProtocolError,
    Reply,
    Request,
    decode_command,
    encode_command,
    parse_request,
)
from nodes.raft import ConfChange, ConfChangeType, EntryType, codec
from nodes.recovery import RecoveryError, next_boot, recover
from nodes.wal import SNAP_INSTALL, SNAP_LOCAL, WAL, WalEntry, WalHardState, WalSnapshot


def kv_bytes(d: dict[str, object]) -> bytes:
    kv = KVStore(dict(d))
    return kv.snapshot()


def test_snapshot_plus_log_recovery(tmp_path: Path) -> None:
    snap.save(tmp_path / "snap", snap.SnapshotFile(10, 2, (1, 2, 3), (), kv_bytes({"a": 1})))
    w = WAL(tmp_path / "wal")
    w.open()
    w.save(WalHardState(2, 1, 8), [WalEntry(2, i, 0, b"x") for i in range(5, 11)])
    w.save_snapshot(WalSnapshot(10, 2, SNAP_LOCAL))
    cc = codec.encode_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 4))
    w.save(WalHardState(3, 2, 12), [WalEntry(3, 11, 0, b"y"), WalEntry(3, 12, int(EntryType.CONF_CHANGE), cc)])
    w.close()
    d = recover(tmp_path)
    assert (d.snapshot_index, d.snapshot_term) == (10, 2)
    assert d.storage.first_index() == 11 and d.storage.last_index() == 12
    assert d.hard_state.term == 3 and d.hard_state.vote == 2 and d.hard_state.commit == 12
    assert d.boot_conf.voters == (1, 2, 3) and d.boot_conf.learners == (4,)
    kv = KVStore()
    kv.restore(d.kv_data)
    assert kv.get("a") == 1
    assert not d.fresh


def test_commit_behind_snapshot_is_raised(tmp_path: Path) -> None:
    # crash after an installed snapshot file + marker, before the hard state naming its commit
    snap.save(tmp_path / "snap", snap.SnapshotFile(50, 4, (1, 2, 3), (), kv_bytes({})))
    w = WAL(tmp_path / "wal")
    w.open()
    w.save(WalHardState(4, 0, 3), [WalEntry(1, i, 0, b"") for i in range(1, 4)])
    w.save_snapshot(WalSnapshot(50, 4, SNAP_INSTALL))
    w.close()
    d = recover(tmp_path)
    assert d.hard_state.commit == 50 and d.storage.last_index() == 50


def test_missing_snapshot_named_by_wal_refuses(tmp_path: Path) -> None:
    w = WAL(tmp_path / "wal")
    w.open()
    w.save_snapshot(WalSnapshot(7, 1, SNAP_LOCAL))
    w.close()
    with pytest.raises(RecoveryError, match="names snapshot 7"):
        recover(tmp_path)


def test_corrupt_snapshot_refuses(tmp_path: Path) -> None:
    w = WAL(tmp_path / "wal")
    w.open()
    w.save(WalHardState(1, 1, 3), [WalEntry(1, i, 0, b"x") for i in range(1, 4)])
    w.close()
    p = snap.save(tmp_path / "snap", snap.SnapshotFile(3, 1, (1,), (), kv_bytes({"k": "v"})))
    text = p.read_text()
    assert '\\"v\\"' in text
    p.write_text(text.replace('\\"v\\"', '\\"w\\"'))
    with pytest.raises(RecoveryError, match="checksum"):
        recover(tmp_path)


@pytest.mark.parametrize("sync_data", [True, False])
def test_snapshot_data_is_fsynced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_data: bool
) -> None:
    """The file's data is durable before it gets its final name; sync_data=False is the
    seeded bug snapshot-rename-before-fsync (renamed into place, data never fsynced)."""
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync " + Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append("rename " + Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    (tmp_path / "snap").mkdir()
    snap.save(tmp_path / "snap", snap.SnapshotFile(5, 1, (1,), (), kv_bytes({"k": 1})), sync_data=sync_data)
    name = "snap-0000000000000005.json"
    expected = [f"fsync {name}.tmp", f"rename {name}", "fsync snap"]
    assert calls == (expected if sync_data else expected[1:])


def test_boot_counter(tmp_path: Path) -> None:
    assert [next_boot(tmp_path) for _ in range(3)] == [1, 2, 3]


def test_new_directories_are_made_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory made by the WAL, the first snapshot or the data dir check is durable only
    once its parent is fsynced (faultfs found both gaps: tests/faultfs/test_raftkv_power_loss.py);
    each parent is fsynced after the mkdir, top down."""
    synced: list[Path] = []
    real = fsutil.fsync_dir

    def record(path: Path) -> None:
        synced.append(Path(path))
        real(path)

    for module in (fsutil, wal, snap):
        monkeypatch.setattr(module, "fsync_dir", record)
    data = tmp_path / "a" / "data"
    assert fsutil.mkdir_durable(data)
    assert synced == [tmp_path, tmp_path / "a"]
    synced.clear()
    assert not fsutil.mkdir_durable(data)  # nothing made, nothing synced
    assert synced == []
    WAL(data / "wal").open()
    assert synced[0] == data  # wal/ is named durably before its first segment
    assert data / "wal" in synced
    synced.clear()
    snap.save(data / "snap", snap.SnapshotFile(3, 1, (1,), (), kv_bytes({})))
    assert synced == [data, data / "snap"]  # snap/ itself, then the renamed file
    synced.clear()
    snap.save(data / "snap", snap.SnapshotFile(4, 1, (1,), (), kv_bytes({})))
    assert synced == [data / "snap"]


@pytest.mark.parametrize(
    ("cmd", "status", "value", "error"),
    [
        ({"op": "put", "key": "k", "value": 5}, "ok", 5, None),
        ({"op": "cas", "key": "k", "expected": 1, "new": 2}, "ok", 2, None),
        ({"op": "cas", "key": "k", "expected": 9, "new": 2}, "fail", 1, "cas-mismatch"),
        ({"op": "cas", "key": "k", "expected": "1", "new": 2}, "fail", 1, "cas-mismatch"),
        ({"op": "cas", "key": "nope", "expected": None, "new": 3}, "ok", 3, None),
        ({"op": "delete", "key": "k"}, "ok", None, None),
    ],
)
def test_state_machine(cmd: dict[str, object], status: str, value: object, error: str | None) -> None:
    kv = KVStore({"k": 1})
    r = kv.apply(cmd)
    assert (r.status, r.value, r.error) == (status, value, error)


def test_protocol_round_trip_and_errors() -> None:
    req = parse_request(b'{"op":"cas","key":"k","expected":1,"new":"x","id":7}')
    assert req == Request("cas", "k", expected=1, new="x", id=7)
    cmd = decode_command(encode_command("n1.1.5", req))
    assert cmd == {"rid": "n1.1.5", "op": "cas", "key": "k", "expected": 1, "new": "x"}
    for bad in (b"nope", b"[]", b'{"op":"zap","key":"k"}', b'{"op":"get","key":3}',
                b'{"op":"put","key":"k","value":[1]}', b'{"op":"get","key":"k","read":"x"}'):
        with pytest.raises(ProtocolError):
            parse_request(bad)
    # a committed entry changed on disk (a flipped bit that got past the WAL's checksum) is
    # refused like any non-command, never a crash of the state machine
    for bad in (b'{"rid":"r","op":"put","cey":"k","value":1}', b'{"rid":"r","op":"put","key":["k"]}'):
        with pytest.raises(ProtocolError, match="no string key"):
            decode_command(bad)
    assert Reply("fail", 2, "cas-mismatch", "n2", 7).to_line() == (
        b'{"status":"fail","value":2,"error":"cas-mismatch","leader":"n2","id":7}\n'
    )


def test_snapshot_file_without_its_wal_marker(tmp_path: Path) -> None:
    """A crash after the snapshot writer made the file durable, before the loop recorded it in
    the WAL: recovery starts from the file, the WAL still holds what follows."""
    w = WAL(tmp_path / "wal")
    w.open()
    w.save(WalHardState(2, 1, 20), [WalEntry(2, i, 0, b"x") for i in range(1, 21)])
    w.close()
    snap.save(tmp_path / "snap", snap.SnapshotFile(15, 2, (1, 2, 3), (), kv_bytes({"a": 15})))
    d = recover(tmp_path)
    assert (d.snapshot_index, d.snapshot_term) == (15, 2)
    assert d.storage.first_index() == 16 and d.storage.last_index() == 20
    assert d.hard_state.commit == 20


def _node_dir_with_snapshot(tmp_path: Path) -> Path:
    """A data dir as a node leaves it: boot counter, WAL up to 20, a snapshot at 15."""
    next_boot(tmp_path)
    w = WAL(tmp_path / "wal")
    w.open()
    w.save(WalHardState(2, 1, 20), [WalEntry(2, i, 0, b"x") for i in range(1, 21)])
    w.save_snapshot(WalSnapshot(15, 2, SNAP_LOCAL))
    w.close()
    snap.save(tmp_path / "snap", snap.SnapshotFile(15, 2, (1, 2, 3), (), kv_bytes({"a": 15})))
    return tmp_path


@pytest.mark.parametrize("how", ["deleted", "emptied", "dir-gone"])
def test_lost_wal_beside_a_snapshot_refuses(tmp_path: Path, how: str) -> None:
    # starting from the snapshot alone would forget the vote and the acknowledged entries
    # after it (a double vote is then possible); etcd refuses a member whose WAL is gone
    # (issue 20, item 6)
    d = _node_dir_with_snapshot(tmp_path)
    for seg in (d / "wal").glob("wal-*.log"):
        if how == "emptied":
            seg.write_bytes(b"")
        else:
            seg.unlink()
    if how == "dir-gone":
        (d / "wal").rmdir()
    with pytest.raises(RecoveryError, match="lost"):
        recover(d)
    assert not list((d / "wal").glob("wal-*.log")) or how == "emptied"  # nothing made up


def test_lost_wal_of_a_started_node_refuses(tmp_path: Path) -> None:
    next_boot(tmp_path)  # it ran before: its WAL existed (recovery creates it before the counter)
    w = WAL(tmp_path / "wal")
    w.open()
    w.save(WalHardState(3, 2, 0), [])
    w.close()
    for seg in (tmp_path / "wal").glob("wal-*.log"):
        seg.unlink()
    with pytest.raises(RecoveryError, match="lost"):
        recover(tmp_path)


def test_fresh_and_joined_data_dirs_still_start(tmp_path: Path) -> None:
    assert recover(tmp_path / "fresh").fresh
    d = tmp_path / "joiner"  # started with --join, killed before it heard from anyone
    d.mkdir()
    recover(d).wal.close()
    next_boot(d)
    assert recover(d).fresh


def test_snapshot_membership_is_covered_by_its_checksum(tmp_path: Path) -> None:
    p = snap.save(tmp_path / "snap", snap.SnapshotFile(3, 1, (1, 2, 3), (), kv_bytes({"k": "v"}), {4: 1}))
    assert snap.load(p).removed == {4: 1}
    text = p.read_text()
    for good, bad in (('"voters": [1, 2, 3]', '"voters": [1, 2]'), ('"term": 1', '"term": 2'),
                      ('"removed": {"4": 1}', '"removed": {}')):
        assert good in text
        p.write_text(text.replace(good, bad))
        with pytest.raises(snap.SnapshotCorrupt, match="checksum"):
            snap.load(p)
