"""Frame-aware filtering of one directed peer link: which Raft messages to drop or hold back.

The peer transport (nodes/transport.py) sends ``length u32 | crc32 u32 | payload`` frames,
big-endian; the payload is a Message encoded by nodes/raft/codec.py, whose first byte is the
MessageType. The proxy splits the byte stream into whole frames with `FrameSplitter` and asks
a `MessageRule` what to do with each: forward it, drop it, hold it (and, to keep TCP's
order, everything after it on the same connection) until a release time, or forward it
without its sender's current-term entries. Rules can narrow themselves to messages carrying
a commit index at or above a bound, or an entry of the sender's term.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import Enum

from nodes.raft.codec import decode_message, encode_message
from nodes.raft.types import MessageType

FRAME = struct.Struct(">II")  # payload length, crc32 of the payload (as nodes/transport.py)
MAX_FRAME = 64 << 20
HELLO_MAGIC = b"\xfeRKV-HELLO-1"  # how a connection's hello payload begins (as nodes/transport.py)


class FrameError(ValueError):
    """The byte stream of a peer link is not a sequence of transport frames."""


class Action(Enum):
    FORWARD = "forward"
    DROP = "drop"
    HOLD = "hold"
    STRIP = "strip"  # forward the message without the entries the rule picks


def parse_types(names: list[str] | tuple[str, ...]) -> frozenset[MessageType]:
    """Message type names (`TIMEOUT_NOW`, `app`) to MessageTypes; unknown names are an error."""
    out = set()
    for name in names:
        try:
            out.add(MessageType[name.upper()])
        except KeyError:
            known = ", ".join(t.name for t in MessageType)
            raise ValueError(f"msgfilter: unknown Raft message type {name!r} (known: {known})") from None
    return frozenset(out)


def message_type(payload: bytes) -> MessageType | None:
    """The Raft message type of a frame's payload (its first byte); None if not a known type."""
    if not payload:
        return None
    try:
        return MessageType(payload[0])
    except ValueError:
        return None


def is_hello(frame: bytes) -> bool:
    """Whether a whole frame (header included) is the hello that begins a raftkv peer
    connection; its first payload byte is no MessageType, so rules forward it."""
    return frame[FRAME.size : FRAME.size + len(HELLO_MAGIC)] == HELLO_MAGIC


@dataclass
class FrameSplitter:
    """Incremental splitter: feed bytes, get back whole frames (header included)."""

    buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        frames: list[bytes] = []
        while len(self.buf) >= FRAME.size:
            n, _ = FRAME.unpack_from(self.buf)
            if n > MAX_FRAME:
                raise FrameError(f"msgfilter: frame of {n} bytes exceeds the transport's limit")
            end = FRAME.size + n
            if len(self.buf) < end:
                break
            frames.append(bytes(self.buf[:end]))
            del self.buf[:end]
        return frames


def message_commit(payload: bytes) -> int | None:
    """The commit index a message's payload carries (codec layout: type byte, then the
    uvarints to, from, term, log_term, index, commit); None if the header is malformed."""
    pos = 1
    value = 0
    for _ in range(6):
        value = shift = 0
        while True:
            if pos >= len(payload) or shift > 63:
                return None
            b = payload[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
    return value


@dataclass(frozen=True)
class MessageRule:
    """What a link does to messages of `types`: drop them, or hold them `delay` seconds
    (None = until released by the controller). With `min_commit`, only the messages of those
    types that carry a commit index of at least `min_commit` are affected: the loss of exactly
    the messages that would tell the receiver about a new commit, as when a leader crashes
    right after committing. With `new_term_entries`, only those carrying an entry of the
    sender's current term: a new leader's own entries are lost while the older entries it
    forwards arrive. STRIP forwards such a message without its current-term entries: what
    the sender would have sent with a smaller size limit, so its log position and commit
    index stay true (a probe still gets its answer)."""

    types: frozenset[MessageType]
    action: Action
    delay: float | None = None
    min_commit: int | None = None
    new_term_entries: bool = False

    def __post_init__(self) -> None:
        if self.action is Action.FORWARD:
            raise ValueError("msgfilter: a rule drops or holds; forwarding is the default")
        if self.action is Action.STRIP and not self.new_term_entries:
            raise ValueError("msgfilter: only new-term entries can be stripped")
        if self.delay is not None and self.delay < 0:
            raise ValueError(f"msgfilter: delay must be >= 0 seconds, got {self.delay}")

    def decide(self, frame: bytes) -> Action:
        payload = frame[FRAME.size :]
        t = message_type(payload)
        if t is None or t not in self.types:
            return Action.FORWARD
        if self.min_commit is not None:
            commit = message_commit(payload)
            if commit is None or commit < self.min_commit:
                return Action.FORWARD
        if self.new_term_entries:
            try:
                m = decode_message(payload)
            except ValueError:
                return Action.FORWARD
            if not any(e.term == m.term for e in m.entries):
                return Action.FORWARD
        return self.action


def drop(*types: str) -> MessageRule:
    return MessageRule(parse_types(types), Action.DROP)


def drop_commit_at_least(min_commit: int, *types: str) -> MessageRule:
    """Drop the messages of `types` that carry a commit index >= `min_commit`."""
    return MessageRule(parse_types(types), Action.DROP, min_commit=min_commit)


def strip_new_term_entries(*types: str) -> MessageRule:
    """Forward the messages of `types` without the entries of the sender's current term."""
    return MessageRule(parse_types(types), Action.STRIP, new_term_entries=True)


def strip_frame(frame: bytes) -> bytes:
    """The transport frame of the same message without the entries of its sender's term.
    Entries follow the log, so the kept ones are a prefix and the message stays valid."""
    m = decode_message(frame[FRAME.size :])
    m.entries = tuple(e for e in m.entries if e.term != m.term)
    payload = encode_message(m)
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def hold(*types: str, delay: float | None = None) -> MessageRule:
    return MessageRule(parse_types(types), Action.HOLD, delay)
