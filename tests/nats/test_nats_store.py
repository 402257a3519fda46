"""Stream messages read from nats-server 2.9's file store blocks.

testdata/stream-1.blk is a real block (nats-server 2.9.10, stream T, stopped cleanly): seq
1..6 with values 1..6, seq 3 with a header, seq 4 on subject "other", seq 5 deleted."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from harness.db.nats_store import (
    ERASED,
    HAS_HEADERS,
    StoreFormatError,
    block_index,
    read_block,
    read_blocks,
)

BLOCK = (Path(__file__).parent / "testdata" / "stream-1.blk").read_bytes()


def test_real_block() -> None:
    msgs, notes = read_blocks([("1.blk", BLOCK)])
    assert notes == []
    assert [(m.seq, m.subject, m.data) for m in msgs] == [
        (1, "fl.log", b"1"), (2, "fl.log", b"2"), (3, "fl.log", b"3"), (4, "other", b"4"), (6, "fl.log", b"6"),
    ]


def record(seq: int, subject: str, data: bytes, headers: bytes = b"", erased: bool = False) -> bytes:
    body = subject.encode() + (struct.pack("<I", len(headers)) + headers if headers else b"") + data
    total = 22 + len(body) + 8
    return struct.pack("<IQqH", total | (HAS_HEADERS if headers else 0), seq | (ERASED if erased else 0), 0,
                       len(subject)) + body + b"\0" * 8


def test_blocks_in_any_order_give_messages_by_sequence_and_erased_ones_are_skipped() -> None:
    b2 = record(3, "s", b"c") + record(4, "s", b"d", erased=True)
    b1 = record(1, "s", b"a", headers=b"NATS/1.0\r\nX: y\r\n\r\n") + record(2, "s", b"b")
    msgs, _ = read_blocks([("2.blk", b2), ("1.blk", b1)])
    assert [(m.seq, m.data) for m in msgs] == [(1, b"a"), (2, b"b"), (3, b"c")]


def test_torn_tail_ends_the_block_with_a_note() -> None:
    whole = record(1, "s", b"a") + record(2, "s", b"b")
    msgs, note = read_block("n2:7.blk", whole[:-5])
    assert [m.seq for m in msgs] == [1]
    assert note is not None and "n2:7.blk" in note and "offset" in note


def test_zero_padding_ends_the_block_quietly() -> None:
    msgs, note = read_block("1.blk", record(1, "s", b"a") + b"\0" * 64)
    assert [m.seq for m in msgs] == [1] and note is None


def test_headers_running_past_the_record_are_an_error() -> None:
    bad = bytearray(record(1, "s", b"a", headers=b"hh"))
    struct.pack_into("<I", bad, 22 + 1, 1000)  # header length beyond the record
    with pytest.raises(StoreFormatError, match="1.blk: record at offset 0"):
        read_block("1.blk", bytes(bad))


def test_block_names() -> None:
    assert block_index("12.blk") == 12
    assert block_index("12.idx") is None and block_index("index.db") is None
