"""Compact binary wire encoding of the Raft core's values (no pickle).

Building blocks:
- uvarint: unsigned LEB128 (7 bits per byte, low first, high bit = more) of a uint64, at most
  10 bytes; integers outside 0..2**64-1 are refused both ways (as Go's binary.Uvarint), so
  nothing is encoded that a replica could not decode.
- bytes: uvarint length, then the raw bytes.
- enum: one byte holding the IntEnum value.

Layouts (fields in this order):
- Entry:        uvarint term, uvarint index, enum type, bytes data
- HardState:    uvarint term, uvarint vote, uvarint commit
- ConfState:    uvarint n, n x uvarint voter, uvarint m, m x uvarint learner
- Snapshot:     bytes data, uvarint index, uvarint term, ConfState
- ConfChange:   enum type, uvarint node_id, bytes context
- Message:      enum type, uvarint to, from, term, log_term, index, commit, reject_hint,
                byte flags (bit 0 reject, bit 1 snapshot present), bytes context,
                uvarint n, n x Entry, [Snapshot if flag bit 1]

Every `decode_*` consumes its whole input and raises ValueError on malformed input
(truncated, trailing bytes, overlong varint, unknown enum value).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import TypeVar

from .types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

E = TypeVar("E", bound=IntEnum)
T = TypeVar("T")

_FLAG_REJECT = 1
_FLAG_SNAPSHOT = 2
_MAX_VARINT_BYTES = 10
MAX_UINT64 = (1 << 64) - 1


def _put_uvarint(out: bytearray, v: int) -> None:
    if v < 0:
        raise ValueError(f"codec: cannot encode negative integer {v}")
    if v > MAX_UINT64:
        raise ValueError(f"codec: integer {v} does not fit in 64 bits")
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _put_bytes(out: bytearray, b: bytes) -> None:
    _put_uvarint(out, len(b))
    out += b


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = memoryview(buf)
        self.pos = 0

    def uvarint(self) -> int:
        result = 0
        shift = 0
        for _ in range(_MAX_VARINT_BYTES):
            if self.pos >= len(self.buf):
                raise ValueError("codec: truncated varint")
            b = self.buf[self.pos]
            self.pos += 1
            if b < 0x80:
                if shift == 63 and b > 1:
                    raise ValueError("codec: varint does not fit in 64 bits")
                return result | (b << shift)
            result |= (b & 0x7F) << shift
            shift += 7
        raise ValueError("codec: varint longer than 10 bytes")

    def byte(self) -> int:
        if self.pos >= len(self.buf):
            raise ValueError("codec: truncated input")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def enum(self, cls: type[E]) -> E:
        v = self.byte()
        try:
            return cls(v)
        except ValueError:
            raise ValueError(f"codec: unknown {cls.__name__} value {v}") from None

    def bytes_(self) -> bytes:
        n = self.uvarint()
        end = self.pos + n
        if end > len(self.buf):
            raise ValueError(f"codec: bytes field of length {n} runs past the end")
        out = bytes(self.buf[self.pos : end])
        self.pos = end
        return out

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise ValueError(f"codec: {len(self.buf) - self.pos} trailing byte(s)")


def _decode_all(b: bytes, read: Callable[[_Reader], T]) -> T:
    if not isinstance(b, (bytes, bytearray, memoryview)):
        raise ValueError(f"codec: expected bytes, got {type(b).__name__}")
    r = _Reader(bytes(b))
    v = read(r)
    r.done()
    return v


# -- Entry --
def _write_entry(out: bytearray, e: Entry) -> None:
    _put_uvarint(out, e.term)
    _put_uvarint(out, e.index)
    out.append(int(e.type))
    _put_bytes(out, e.data)


def _read_entry(r: _Reader) -> Entry:
    term = r.uvarint()
    index = r.uvarint()
    return Entry(term, index, r.enum(EntryType), r.bytes_())


def encode_entry(e: Entry) -> bytes:
    out = bytearray()
    _write_entry(out, e)
    return bytes(out)


def decode_entry(b: bytes) -> Entry:
    return _decode_all(b, _read_entry)


# -- HardState --
def encode_hard_state(hs: HardState) -> bytes:
    out = bytearray()
    for v in (hs.term, hs.vote, hs.commit):
        _put_uvarint(out, v)
    return bytes(out)


def decode_hard_state(b: bytes) -> HardState:
    return _decode_all(b, lambda r: HardState(r.uvarint(), r.uvarint(), r.uvarint()))


# -- ConfState --
def _write_conf_state(out: bytearray, cs: ConfState) -> None:
    for ids in (cs.voters, cs.learners):
        _put_uvarint(out, len(ids))
        for i in ids:
            _put_uvarint(out, i)


def _read_ids(r: _Reader) -> tuple[int, ...]:
    n = r.uvarint()
    if n > len(r.buf) - r.pos:
        raise ValueError(f"codec: id list of length {n} runs past the end")
    return tuple(r.uvarint() for _ in range(n))


def _read_conf_state(r: _Reader) -> ConfState:
    voters = _read_ids(r)
    return ConfState(voters, _read_ids(r))


def encode_conf_state(cs: ConfState) -> bytes:
    out = bytearray()
    _write_conf_state(out, cs)
    return bytes(out)


def decode_conf_state(b: bytes) -> ConfState:
    return _decode_all(b, _read_conf_state)


# -- Snapshot --
def _write_snapshot(out: bytearray, s: Snapshot) -> None:
    _put_bytes(out, s.data)
    _put_uvarint(out, s.metadata.index)
    _put_uvarint(out, s.metadata.term)
    _write_conf_state(out, s.metadata.conf_state)


def _read_snapshot(r: _Reader) -> Snapshot:
    data = r.bytes_()
    index = r.uvarint()
    term = r.uvarint()
    return Snapshot(data, SnapshotMetadata(_read_conf_state(r), index, term))


def encode_snapshot(s: Snapshot) -> bytes:
    out = bytearray()
    _write_snapshot(out, s)
    return bytes(out)


def decode_snapshot(b: bytes) -> Snapshot:
    return _decode_all(b, _read_snapshot)


# -- ConfChange --
def encode_conf_change(cc: ConfChange) -> bytes:
    out = bytearray()
    out.append(int(cc.type))
    _put_uvarint(out, cc.node_id)
    _put_bytes(out, cc.context)
    return bytes(out)


def decode_conf_change(b: bytes) -> ConfChange:
    return _decode_all(b, lambda r: ConfChange(r.enum(ConfChangeType), r.uvarint(), r.bytes_()))


# -- Message --
def encode_message(m: Message) -> bytes:
    out = bytearray()
    out.append(int(m.type))
    for v in (m.to, m.from_, m.term, m.log_term, m.index, m.commit, m.reject_hint):
        _put_uvarint(out, v)
    flags = (_FLAG_REJECT if m.reject else 0) | (_FLAG_SNAPSHOT if m.snapshot is not None else 0)
    out.append(flags)
    _put_bytes(out, m.context)
    _put_uvarint(out, len(m.entries))
    for e in m.entries:
        _write_entry(out, e)
    if m.snapshot is not None:
        _write_snapshot(out, m.snapshot)
    return bytes(out)


def _read_message(r: _Reader) -> Message:
    t = r.enum(MessageType)
    to, from_, term, log_term, index, commit, hint = (r.uvarint() for _ in range(7))
    flags = r.byte()
    if flags & ~(_FLAG_REJECT | _FLAG_SNAPSHOT):
        raise ValueError(f"codec: unknown message flags {flags:#x}")
    context = r.bytes_()
    n = r.uvarint()
    if n > len(r.buf) - r.pos:
        raise ValueError(f"codec: {n} entries cannot fit in the remaining input")
    entries = tuple(_read_entry(r) for _ in range(n))
    snap = _read_snapshot(r) if flags & _FLAG_SNAPSHOT else None
    return Message(t, to=to, from_=from_, term=term, log_term=log_term, index=index,
                   entries=entries, commit=commit, snapshot=snap,
                   reject=bool(flags & _FLAG_REJECT), reject_hint=hint, context=context)


def decode_message(b: bytes) -> Message:
    return _decode_all(b, _read_message)
