"""Reading raftkv's apply and commit events from a block of lines without a JSON parser per line.

Applies are nine events in ten of a long run and commits most of the rest; building a dict per
line costs more than the whole check. nodes/events.py writes them with compact separators and a
fixed key order:

    {"ts":1700000000.25,"node":"n1","boot":1,"type":"apply","index":5,"term":2,
     "digest":"0123456789abcdef","kind":"normal"}
    {"ts":1700000000.25,"node":"n1","boot":1,"type":"commit","index":5,"term":2}

(one line each). numpy walks every line of a block through that template at once, reading 8 bytes
per gather and testing the bytes of a 64-bit word together (SWAR: "SIMD within a register"),
and keeps boot, index, term (and digest). A line that does not match exactly (another
type, other spacing or key order, an escape or control character, a number in another form or
too long, a torn line) is left to the JSON parser, so every line matched here is valid JSON
holding the values read from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Words = npt.NDArray[np.uint64]
Mask = npt.NDArray[np.bool_]

NEWLINE = 10
#: Bytes a block must have after its last line, so that every gather stays inside it.
PADDING = 64
#: Widest fields read here, in bytes (numbers of up to 15 digits, names up to 15 bytes, the
#: timestamp up to 23); a line with a wider one goes to the JSON parser.
TS_WORDS = 3
INT_WORDS = 2
NAME_WORDS = 2


def _each(byte: int) -> np.uint64:
    return np.uint64(byte * 0x0101010101010101)


_HIGH = _each(0x80)
_LOW7 = _each(0x7F)
_ZERO = _each(ord("0"))
_U = np.uint64
#: x << 8*k keeps the low 8-k bytes; LOW[k] masks the low k bytes of a word
_LOW = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
_POW10_8 = np.uint64(10**8)


@dataclass
class ApplyLines:
    """The template apply lines of a block: their line numbers in it and their fields."""

    lines: Ints
    boot: Ints
    index: Ints
    term: Ints
    #: the 16 hex digits of the digest as one unsigned integer
    digest: Words


def line_bounds(block: npt.NDArray[np.uint8], size: int) -> tuple[Ints, Ints]:
    """(starts, ends) of the newline-terminated lines in block[:size]; ends are the newlines."""
    ends = np.flatnonzero(block[:size] == NEWLINE)
    starts = np.empty_like(ends)
    if ends.size:
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


# -- bytewise tests of 64-bit words: each sets bit 7 of every byte that matches -----------

def _is_byte(x: Words, byte: int) -> Words:
    y = x ^ _each(byte)
    return ~(((y & _LOW7) + _LOW7) | y) & _HIGH


def _not_digit(x: Words) -> Words:
    y = x ^ _ZERO  # digits become 0..9
    return (((y & _LOW7) + _each(0x7F - 9)) | y) & _HIGH


def _below_space(x: Words) -> Words:
    return ~(((x & _LOW7) + _each(0x80 - 0x20)) | x) & _HIGH


def _first_flag(flags: Words) -> Ints:
    """Index of the lowest byte with bit 7 set (8: none)."""
    lowest = flags & (~flags + _U(1))
    # (1 << 8k+7) >> 7 times 0x0001020304050607 has k in its top byte
    k = ((lowest >> _U(7)) * _U(0x0001020304050607)) >> _U(56)
    return np.where(flags == 0, 8, k.astype(np.int64))


class _Walker:
    """Reads the 8 * n bytes at any positions of a block as n little-endian words per line, in
    one gather of n * 8-byte records (a gather costs per record, hardly per byte)."""

    def __init__(self, block: npt.NDArray[np.uint8]) -> None:
        if block.size < PADDING:
            raise ValueError("block shorter than its padding")
        self.block = block
        self.last = block.size - PADDING  # a gather never starts past here
        self._records: dict[int, npt.NDArray[np.void]] = {}

    def words(self, pos: Ints, n: int) -> list[Words]:
        records = self._records.get(n)
        if records is None:
            records = self._records[n] = np.ndarray(
                (self.block.size - 8 * n + 1,), dtype=f"V{8 * n}", buffer=self.block.data,
                strides=(1,))
        m = records[np.minimum(pos, self.last)].view("<u8").reshape(len(pos), n)
        return [m[:, i] for i in range(n)]


def _recut(words: list[Words], offset: int, n: int) -> list[Words]:
    """The n words starting `offset` bytes into consecutive words."""
    out = []
    for i in range(n):
        j, r = divmod(offset + 8 * i, 8)
        if r == 0:
            out.append(words[j])
        else:
            out.append((words[j] >> _U(8 * r)) | (words[j + 1] << _U(64 - 8 * r)))
    return out


def _literal(words: list[Words], text: bytes) -> Mask:
    """Which lines have text at the start of their words."""
    ok = np.ones(len(words[0]), dtype=bool)
    for i in range(0, len(text), 8):
        piece = text[i:i + 8]
        ok &= (words[i // 8] & _LOW[len(piece)]) == _U(int.from_bytes(piece, "little"))
    return ok


def _first_stop(words: list[Words], stop: Callable[[Words], Words]) -> Ints:
    """Bytes before the first stop byte of consecutive words (8 * len(words): none)."""
    width = np.full(len(words[0]), 8 * len(words), dtype=np.int64)
    for i in reversed(range(len(words))):
        k = _first_flag(stop(words[i]))
        width = np.where(k < 8, 8 * i + k, width)
    return width


def _plain_stop(x: Words) -> Words:
    """Bytes that end an unescaped JSON string here: the quote, a backslash, a control byte."""
    return _is_byte(x, ord('"')) | _is_byte(x, ord("\\")) | _below_space(x)


def _number_stop(x: Words) -> Words:
    return _not_digit(x) & ~_is_byte(x, ord("."))


@dataclass
class CommitLines:
    """The template commit lines of a block: their line numbers in it and their fields."""

    lines: Ints
    boot: Ints
    index: Ints
    term: Ints


_APPLY = b',"type":"apply","index":'
_COMMIT = b',"type":"commit","index":'


def find_template_lines(block: npt.NDArray[np.uint8], starts: Ints, ends: Ints
                        ) -> tuple[ApplyLines, CommitLines]:
    """The lines of block (given by starts/ends) that are apply or commit events in the
    template form. block must extend PADDING bytes past the last line (any bytes)."""
    w = _Walker(block)
    lines = np.arange(len(starts))
    head = w.words(starts, TS_WORDS + 1)
    ok = _literal(head, b'{"ts":')
    ts = _recut(head, 6, TS_WORDS)  # the timestamp starts 6 bytes in
    width = _first_stop(ts, _number_stop)
    ok &= _decimal(ts, width)
    p = starts + 6 + width
    x = w.words(p, 4)  # ,"node":" then the name
    ok &= _literal(x, b',"node":"')
    width = _first_stop(_recut(x, 9, NAME_WORDS), _plain_stop)
    ok &= width < 8 * NAME_WORDS
    p = p + 9 + width
    x = w.words(p, 4)  # ","boot": then the boot
    ok &= _literal(x, b'","boot":')
    boot, good, width = _integer(w, p + 9, _recut(x, 9, INT_WORDS))
    ok &= good
    p = p + 9 + width
    keep = np.flatnonzero(ok)
    lines, p, boot, ends = lines[keep], p[keep], boot[keep], ends[keep]
    x = w.words(p, 5)  # ,"type":"apply","index": then the index
    is_apply = _literal(x, _APPLY)
    a = np.flatnonzero(is_apply)
    c = np.flatnonzero(~is_apply)
    y = w.words(p[c], 6)  # ,"type":"commit","index": then the index
    is_commit = _literal(y, _COMMIT)
    c = c[is_commit]
    return (_apply(w, lines[a], p[a] + 24, boot[a], ends[a], [x[3][a], x[4][a]]),
            _commit(w, lines[c], p[c] + 25, boot[c], ends[c],
                    [z[is_commit] for z in _recut(y, 25, INT_WORDS)]))


def _apply(w: _Walker, lines: Ints, p: Ints, boot: Ints, ends: Ints, index_words: list[Words]
           ) -> ApplyLines:
    """The rest of an apply line, from its index (whose words are given) on."""
    index, ok, width = _integer(w, p, index_words)
    p = p + width
    x = w.words(p, 3)  # ,"term": then the term
    ok &= _literal(x, b',"term":')
    term, good, width = _integer(w, p + 8, x[1:])
    ok &= good
    p = p + 8 + width
    x = w.words(p, 7)  # ,"digest":" 16 hex digits ","kind":" then the kind
    ok &= _literal(x, b',"digest":"')
    digest, good = _hex(_recut(x, 11, 2))
    ok &= good & _literal(_recut(x, 27, 2), b'","kind":"')
    width = _first_stop(_recut(x, 37, NAME_WORDS), _plain_stop)
    ok &= width < 8 * NAME_WORDS
    p = p + 37 + width
    ok &= _literal(w.words(p, 1), b'"}') & (p + 2 == ends)
    return ApplyLines(lines[ok], boot[ok], index[ok], term[ok], digest[ok])


def _commit(w: _Walker, lines: Ints, p: Ints, boot: Ints, ends: Ints, index_words: list[Words]
            ) -> CommitLines:
    """The rest of a commit line, from its index (whose words are given) on."""
    index, ok, width = _integer(w, p, index_words)
    p = p + width
    x = w.words(p, 3)  # ,"term": then the term
    ok &= _literal(x, b',"term":')
    term, good, width = _integer(w, p + 8, x[1:])
    ok &= good
    p = p + 8 + width
    ok &= _literal(w.words(p, 1), b"}") & (p + 1 == ends)
    return CommitLines(lines[ok], boot[ok], index[ok], term[ok])


def _digits8(x: Words, k: Ints) -> Words:
    """The number written by the first k (1..8) bytes of x, all digits."""
    y = (x ^ _ZERO) << (_U(8) * (_U(8) - k.astype(np.uint64)))
    # pairs, then quads, then the eight digits: each step adds a lane times 10**n to the next
    y = (y * _U(10) + (y >> _U(8))) & _U(0x00FF00FF00FF00FF)
    y = (y * _U(100) + (y >> _U(16))) & _U(0x0000FFFF0000FFFF)
    y = (y * _U(10000) + (y >> _U(32))) & _U(0xFFFFFFFF)
    return y


def _integer(w: _Walker, pos: Ints, words: list[Words]) -> tuple[Ints, Mask, Ints]:
    """The JSON integer at pos, whose INT_WORDS words are given (no sign, no leading zero, up
    to 15 digits): its value, whether there is one, and its width."""
    width = _first_stop(words, _not_digit)
    first = words[0]
    ok = (width >= 1) & (width < 8 * INT_WORDS)
    ok &= (width == 1) | ((first & _U(0xFF)) != _U(ord("0")))
    value = _digits8(first, np.clip(width, 1, 8))
    long = width > 8
    if long.any():  # the digits before the last 8, times 10**8, plus the last 8
        tail = _digits8(w.words(np.maximum(pos + width - 8, pos), 1)[0], np.full_like(width, 8))
        head = _digits8(first, np.clip(width - 8, 1, 8))
        value = np.where(long, head * _POW10_8 + tail, value)
    return value.astype(np.int64), ok, width


def _decimal(words: list[Words], width: Ints) -> Mask:
    """Which spans of digits and dots (at the start of words) are JSON numbers like 12 or
    12.5."""
    ok = (width >= 1) & (width < 8 * len(words))
    dots = np.zeros(len(width), dtype=np.int64)
    for i, x in enumerate(words):
        flags = _is_byte(x, ord(".")) & _LOW[np.clip(width - 8 * i, 0, 8)]
        one = (flags & (flags - _U(1))) == 0
        dots += np.where(flags == 0, 0, np.where(one, 1, 2))
    byte0, byte1 = words[0] & _U(0xFF), (words[0] >> _U(8)) & _U(0xFF)
    end = np.maximum(width - 1, 0)
    last = (np.choose(end // 8, words) >> (_U(8) * (end % 8).astype(np.uint64))) & _U(0xFF)
    dot = _U(ord("."))
    ok &= (dots <= 1) & (byte0 != dot) & (last != dot)
    ok &= (byte0 != _U(ord("0"))) | (width == 1) | (byte1 == dot)
    return ok


def _hex(words: list[Words]) -> tuple[Words, Mask]:
    """The 16 lowercase hex digits in two words as an integer, and which lines have them."""
    value = np.zeros(len(words[0]), dtype=np.uint64)
    ok = np.ones(len(words[0]), dtype=bool)
    for x in words:
        letters = x ^ _each(0x60)  # a..f become 1..6
        is_letter = ~_not_six(letters) & ~_is_byte(letters, 0) & _HIGH
        is_digit = ~_not_digit(x) & _HIGH
        ok &= (is_letter | is_digit) == _HIGH
        # nibble: digit - '0', or letter - 'a' + 10 == (byte & 0x0F) + 9
        nib = (x & _each(0x0F)) + ((is_letter >> _U(7)) * _U(9))
        for j in range(8):
            value = (value << _U(4)) | ((nib >> _U(8 * j)) & _U(0x0F))
    return value, ok


def _not_six(y: Words) -> Words:
    """Bytes above 6."""
    return (((y & _LOW7) + _each(0x7F - 6)) | y) & _HIGH
