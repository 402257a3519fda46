"""One stream replica's messages, read from a stopped nats-server 2.9's file store.

The log workload must read each replica's own copy, and 2.9 offers no API for that: a direct
get is answered by whichever replica takes it, and a replica subscribes to direct gets only
while it is caught up with its leader (so a lagging replica, the interesting one, cannot be
asked). Its message blocks on disk can: `<store_dir>/jetstream/<account>/streams/<stream>/
msgs/<n>.blk`, read after the server has shut down cleanly (which flushes its write cache).

A block is a sequence of records (little-endian, read from server/filestore.go v2.9.10):

    total_len u32 (high bit: has headers) | seq u64 (high bit: erased) | timestamp i64 |
    subject_len u16 | subject | [headers_len u32 | headers] | data | checksum (8 bytes)

The checksum is a keyed HighwayHash and is not verified here; a record whose length runs past
the end of its block ends the block's reading (a torn write) and is reported.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = struct.Struct("<IQqH")  # total_len, seq, timestamp, subject_len: 22 bytes
HAS_HEADERS = 1 << 31
ERASED = 1 << 63
CHECKSUM = 8
MIN_RECORD = HEADER.size + CHECKSUM
_BLOCK = re.compile(r"^(\d+)\.blk$")


@dataclass(frozen=True)
class StoredMsg:
    seq: int
    subject: str
    data: bytes


class StoreFormatError(Exception):
    """A block that is not in the 2.9 file store format (message names block and offset)."""


def block_index(name: str) -> int | None:
    """The number of a block file `<n>.blk`, None for other files."""
    m = _BLOCK.match(name)
    return int(m.group(1)) if m else None


def read_block(name: str, buf: bytes) -> tuple[list[StoredMsg], str | None]:
    """The live messages of one block, and a note if its tail was torn."""
    out: list[StoredMsg] = []
    pos = 0
    while pos + MIN_RECORD <= len(buf):
        total, seq, _ts, slen = HEADER.unpack_from(buf, pos)
        has_headers = bool(total & HAS_HEADERS)
        rl = total & ~HAS_HEADERS
        if rl == 0:
            break  # preallocated, never written
        if rl < MIN_RECORD + slen or pos + rl > len(buf):
            return out, f"{name}: record at offset {pos} runs past the block (length {rl})"
        body = pos + HEADER.size
        subject = buf[body:body + slen].decode(errors="replace")
        cur = body + slen
        if has_headers:
            (hlen,) = struct.unpack_from("<I", buf, cur)
            cur += 4 + hlen
        end = pos + rl - CHECKSUM
        if cur > end:
            raise StoreFormatError(f"{name}: record at offset {pos}: headers run past the record")
        if not seq & ERASED:
            out.append(StoredMsg(seq, subject, bytes(buf[cur:end])))
        pos += rl
    if any(buf[pos:]):
        return out, f"{name}: {len(buf) - pos} bytes at offset {pos} are not a whole record"
    return out, None


def read_blocks(blocks: Sequence[tuple[str, bytes]]) -> tuple[list[StoredMsg], list[str]]:
    """Messages of a replica from its blocks (any order), by sequence; and notes on torn
    blocks. A sequence stored twice is kept twice: that is for the checker to judge."""
    ordered = sorted(blocks, key=lambda b: block_index(b[0]) or 0)
    msgs: list[StoredMsg] = []
    notes: list[str] = []
    for name, buf in ordered:
        got, note = read_block(name, buf)
        msgs.extend(got)
        if note:
            notes.append(note)
    msgs.sort(key=lambda m: m.seq)
    return msgs, notes
