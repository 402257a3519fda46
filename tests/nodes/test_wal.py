"""WAL: round trip, torn tails at every byte of the last record, corruption, segments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodes.wal import (
    HEADER,
    SNAP_INSTALL,
    SNAP_LOCAL,
    WAL,
    WalCorrupt,
    WalEntry,
    WalHardState,
    WalSnapshot,
    encode_entry,
    encode_hard_state,
    list_segments,
)


def ents(lo: int, hi: int, term: int = 1) -> list[WalEntry]:
    return [WalEntry(term, i, 0, f"data-{i}-{term}".encode()) for i in range(lo, hi + 1)]


def write(d: Path, batches: list[tuple[WalHardState | None, list[WalEntry]]]) -> WAL:
    w = WAL(d)
    w.open()
    for hs, es in batches:
        w.save(hs, es)
        w.sync()
    return w


def test_round_trip(tmp_path: Path) -> None:
    w = write(tmp_path, [(WalHardState(1, 2, 0), ents(1, 3)), (WalHardState(1, 2, 3), ents(4, 5))])
    w.close()
    rec = WAL(tmp_path).open()
    assert rec.hard_state == WalHardState(1, 2, 3)
    assert rec.entries == ents(1, 5)
    assert rec.torn_bytes == 0


def test_overwritten_suffix_is_dropped(tmp_path: Path) -> None:
    w = write(tmp_path, [(WalHardState(1, 1, 0), ents(1, 5)), (WalHardState(2, 2, 3), ents(4, 4, term=2))])
    w.close()
    rec = WAL(tmp_path).open()
    assert rec.entries == ents(1, 3) + ents(4, 4, term=2)


def test_reopen_appends(tmp_path: Path) -> None:
    write(tmp_path, [(WalHardState(1, 1, 0), ents(1, 2))]).close()
    w = WAL(tmp_path)
    assert len(w.open().entries) == 2
    w.save(WalHardState(1, 1, 3), ents(3, 3))
    w.close()
    rec = WAL(tmp_path).open()
    assert rec.entries == ents(1, 3) and rec.hard_state.commit == 3


def last_record_bounds(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    off = 0
    start = 0
    while off < len(data):
        start = off
        (length, _crc, _t) = HEADER.unpack_from(data, off)
        off += HEADER.size + length
    return start, len(data)


def test_torn_tail_at_every_byte_is_truncated(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src, [(WalHardState(1, 1, 1), ents(1, 4)), (None, ents(5, 5))]).close()
    seg = list_segments(src)[-1]
    full = seg.read_bytes()
    start, end = last_record_bounds(seg)
    assert end - start > HEADER.size
    for cut in range(start, end):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / seg.name).write_bytes(full[:cut])
        rec = WAL(d).open()
        assert rec.entries == ents(1, 4), cut
        assert rec.torn_bytes == cut - start
        assert (d / seg.name).stat().st_size == start  # truncated on disk


def test_garbled_complete_last_record_refuses(tmp_path: Path) -> None:
    # a complete record whose checksum fails and none of whose sectors is zero-filled is no
    # torn write but corruption of what may have been acknowledged: etcd's decoder reports
    # ErrCRCMismatch (not io.ErrUnexpectedEOF) and etcd will not repair it (issue 20, item 6)
    write(tmp_path, [(WalHardState(1, 1, 1), ents(1, 4)), (None, ents(5, 5))]).close()
    seg = list_segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF
    seg.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt, match="checksum mismatch in the last record.*not a torn write"):
        WAL(tmp_path).open()
    assert seg.read_bytes() == bytes(data)  # nothing truncated


def test_last_record_with_a_zeroed_sector_is_torn(tmp_path: Path) -> None:
    # etcd's isTornEntry: a record whose checksum fails and one of whose sectors (512-byte
    # chunks of the file) is all zeros was cut short by a crash: truncate it
    w = write(tmp_path, [(WalHardState(1, 1, 1), ents(1, 2))])
    w.save(None, [WalEntry(1, 3, 0, b"y" * 3000)])
    w.close()
    seg = list_segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    start, end = last_record_bounds(seg)
    sector = (start // 512 + 2) * 512
    data[sector : sector + 512] = bytes(512)
    seg.write_bytes(bytes(data))
    rec = WAL(tmp_path).open()
    assert rec.entries == ents(1, 2) and rec.torn_bytes == end - start


@pytest.mark.parametrize("zeros", ["preallocated", "last-512", "last-100", "whole-last-record"])
def test_zero_filled_tail_is_torn(tmp_path: Path, zeros: str) -> None:
    # a preallocated segment, or a tail whose last writes never reached the disk, reads as
    # zeros: etcd's decoder takes a zero length as the end of the written log
    w = write(tmp_path, [(WalHardState(1, 1, 1), ents(1, 4))])
    for i in range(5, 30):
        w.save(WalHardState(1, 1, i - 1), ents(i, i))
    w.close()
    seg = list_segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    n = len(data)
    if zeros == "preallocated":
        data += bytes(1 << 16)
    elif zeros == "whole-last-record":
        start, _ = last_record_bounds(seg)
        data[start:] = bytes(n - start)
    else:
        k = 512 if zeros == "last-512" else 100
        data[n - k :] = bytes(k)
    seg.write_bytes(bytes(data))
    rec = WAL(tmp_path).open()
    assert rec.torn_bytes > 0
    assert [e.index for e in rec.entries] == list(range(1, len(rec.entries) + 1))
    assert rec.entries[-1].index >= (29 if zeros == "preallocated" else 20)
    assert b"\0" * 9 not in seg.read_bytes()[-9:]  # the zeros are gone from the file


def test_zeros_followed_by_valid_records_refuse(tmp_path: Path) -> None:
    write(tmp_path, [(WalHardState(1, 1, 1), ents(1, 10))]).close()
    seg = list_segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    first = HEADER.size + HEADER.unpack_from(data, 0)[0]
    second = first + HEADER.size + HEADER.unpack_from(data, first)[0]
    data[second : second + 40] = bytes(40)  # zeros in the middle: fsynced records follow
    seg.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt):
        WAL(tmp_path).open()


def test_empty_last_segment_gets_its_header_back(tmp_path: Path) -> None:
    # a crash between creating a segment and writing its header leaves it empty
    w = WAL(tmp_path, segment_bytes=300)
    w.open()
    for i in range(1, 20):
        w.save(WalHardState(1, 1, i - 1), ents(i, i))
    w.close()
    segs = list_segments(tmp_path)
    nxt = tmp_path / f"wal-{int(segs[-1].name[4:-4]) + 1:016d}.log"
    nxt.write_bytes(b"")
    w = WAL(tmp_path)
    rec = w.open()
    assert rec.entries == ents(1, 19)
    w.close()
    assert nxt.stat().st_size > 0  # hard state and snapshot marker, as a new segment starts


def test_a_missing_segment_in_the_middle_refuses(tmp_path: Path) -> None:
    # etcd refuses WAL files whose sequence numbers do not increase continuously
    w = WAL(tmp_path, segment_bytes=200)
    w.open()
    for i in range(1, 30):
        w.save(WalHardState(1, 1, i - 1), ents(i, i))
    w.close()
    segs = list_segments(tmp_path)
    assert len(segs) >= 3
    segs[1].unlink()
    with pytest.raises(WalCorrupt, match="wal-0000000000000002.log is missing"):
        WAL(tmp_path).open()


@pytest.mark.parametrize("where", ["header-crc", "payload", "type", "length"])
def test_corruption_before_tail_refuses(tmp_path: Path, where: str) -> None:
    write(tmp_path, [(WalHardState(1, 1, 1), ents(1, 4)), (None, ents(5, 6))]).close()
    seg = list_segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    # the segment starts with its header records (hard state, marker); corrupt a record after
    first = HEADER.size + HEADER.unpack_from(data, 0)[0]
    second = first + HEADER.size + HEADER.unpack_from(data, first)[0]
    pos = {"header-crc": second + 5, "payload": second + HEADER.size + 3, "type": second + 8, "length": second + 1}[where]
    data[pos] ^= 0x5A  # for "length": a length that runs past the end of the file
    seg.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt, match="before the tail|unknown record type|impossible|corrupt"):
        WAL(tmp_path).open()


def test_bug_skip_wal_crc_replays_a_corrupt_record(tmp_path: Path) -> None:
    """The seeded bug skip-wal-crc: the flipped bit of an entry's payload is not noticed, and
    the entry comes back changed (the correct WAL refuses it, as above)."""
    write(tmp_path, [(WalHardState(1, 1, 1), ents(1, 4)), (None, ents(5, 6))]).close()
    seg = list_segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    at = data.index(b"data-3-1")
    data[at + 5] ^= 0x01  # "data-3-1" -> "data-2-1"
    seg.write_bytes(bytes(data))
    with pytest.raises(WalCorrupt, match="checksum mismatch before the tail"):
        WAL(tmp_path).open()
    rec = WAL(tmp_path, check_crc=False).open()
    assert [e.data for e in rec.entries][2] == b"data-2-1"
    assert [e.index for e in rec.entries] == [1, 2, 3, 4, 5, 6]


def test_torn_tail_in_older_segment_refuses(tmp_path: Path) -> None:
    w = WAL(tmp_path, segment_bytes=200)
    w.open()
    for i in range(1, 30):
        w.save(WalHardState(1, 1, i - 1), ents(i, i))
    w.close()
    segs = list_segments(tmp_path)
    assert len(segs) >= 3
    older = segs[0]
    older.write_bytes(older.read_bytes()[:-3])
    with pytest.raises(WalCorrupt, match="not the last"):
        WAL(tmp_path).open()


def test_segments_rotate_and_release(tmp_path: Path) -> None:
    w = WAL(tmp_path, segment_bytes=300)
    w.open()
    for i in range(1, 41):
        w.save(WalHardState(2, 1, i), ents(i, i, term=2))
    w.sync()
    n_before = len(list_segments(tmp_path))
    assert n_before >= 4
    w.save_snapshot(WalSnapshot(30, 2, SNAP_LOCAL))
    removed = w.release_to(30)
    assert removed and len(list_segments(tmp_path)) < n_before
    w.save(WalHardState(2, 1, 41), ents(41, 41, term=2))
    w.close()
    rec = WAL(tmp_path).open()
    assert rec.snapshot == WalSnapshot(30, 2, SNAP_LOCAL)
    assert rec.hard_state == WalHardState(2, 1, 41)
    assert [e.index for e in rec.entries] == list(range(31, 42))


def test_installed_snapshot_discards_log(tmp_path: Path) -> None:
    w = write(tmp_path, [(WalHardState(1, 1, 3), ents(1, 5))])
    w.save_snapshot(WalSnapshot(50, 3, SNAP_INSTALL))
    w.save(WalHardState(3, 0, 51), ents(51, 52, term=3))
    w.close()
    rec = WAL(tmp_path).open()
    assert rec.snapshot.index == 50
    assert rec.entries == ents(51, 52, term=3)


def test_fsync_is_real_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    w = WAL(tmp_path)
    w.open()
    before = len(calls)
    w.save(WalHardState(1, 1, 0), ents(1, 1))
    w.sync()
    assert len(calls) == before + 1 and w.fsyncs >= 1
    w.close()


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[WalHardState, list[WalEntry]]]:
    """Batches as raft hands them over: appends, sometimes overwriting a suffix in a new term."""
    batches = []
    last = 0
    term = 1
    for _ in range(draw(st.integers(1, 8))):
        if last and draw(st.booleans()):
            start = draw(st.integers(max(1, last - 3), last))  # a new leader overwrites
            term += 1
        else:
            start = last + 1
        n = draw(st.integers(0, 4))
        es = [WalEntry(term, i, 0, draw(st.binary(max_size=12))) for i in range(start, start + n)]
        if n:
            last = start + n - 1
        batches.append((WalHardState(term, 1, min(last, draw(st.integers(0, last)))), es))
    return batches


def replay_model(records: list[WalHardState | WalEntry]) -> tuple[WalHardState, list[WalEntry]]:
    hs = WalHardState()
    log: list[WalEntry] = []
    for r in records:
        if isinstance(r, WalHardState):
            hs = r
        else:
            log = [e for e in log if e.index < r.index] + [r]
    return hs, log


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=histories(), cut_frac=st.floats(0, 1))
def test_any_crash_point_recovers_a_prefix(tmp_path: Path, batches: list[tuple[WalHardState, list[WalEntry]]], cut_frac: float) -> None:
    d = tmp_path / f"h{abs(hash((str(batches), cut_frac)))}"
    w = WAL(d)
    w.open()
    records: list[WalHardState | WalEntry] = []
    ends: list[int] = []  # file size after each record
    seg = list_segments(d)[0]
    for hs, es in batches:
        w.save(hs, es)
        size = seg.stat().st_size
        # entries then the hard state, one write per batch
        sizes = [len(encode_entry(e)) for e in es] + [len(encode_hard_state(hs))]
        pos = size - sum(sizes)
        batch: list[WalHardState | WalEntry] = [*es, hs]
        for r, n in zip(batch, sizes, strict=True):
            pos += n
            records.append(r)
            ends.append(pos)
    w.close()
    data = seg.read_bytes()
    cut = int(len(data) * cut_frac)  # a crash anywhere, also inside the segment header
    seg.write_bytes(data[:cut])
    complete = [r for r, end in zip(records, ends, strict=True) if end <= cut]
    rec = WAL(d).open()
    hs, log = replay_model(complete)
    assert (rec.hard_state, rec.entries) == (hs, log)
