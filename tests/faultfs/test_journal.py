"""FileJournal: which durable bytes get saved before a write or a cut (table tests)."""

from __future__ import annotations

import pytest

from faultfs.journal import FileJournal


def _apply(durable: bytes, steps: list[tuple[str, int, bytes | int]]) -> tuple[bytes, bytes]:
    """Run writes/cuts on a file whose durable content is `durable`, journalling them;
    return (what reads see, what the journal rolls back to)."""
    cur = bytearray(durable)
    j = FileJournal(len(durable))
    reads: list[tuple[int, int]] = []

    def read_at(off: int, n: int) -> bytes:
        reads.append((off, n))
        return bytes(cur[off:off + n])

    for kind, off, arg in steps:
        if kind == "w":
            assert isinstance(arg, bytes)
            j.note_write(off, len(arg), len(cur), read_at)
            if off > len(cur):
                cur.extend(b"\0" * (off - len(cur)))
            cur[off:off + len(arg)] = arg
        else:
            j.note_truncate(off, len(cur), read_at)
            del cur[off:]
            cur.extend(b"\0" * (off - len(cur)))
    rolled = bytearray(cur[: j.durable_size].ljust(j.durable_size, b"\0"))
    for start, chunk in j.saved():
        rolled[start:start + len(chunk)] = chunk
    # every saved range is read once and never overlaps another
    ranges = sorted(j.saved())
    for (s1, c1), (s2, _) in zip(ranges, ranges[1:], strict=False):
        assert s1 + len(c1) <= s2
    return bytes(cur), bytes(rolled)


CASES = [
    ("append only", b"abc", [("w", 3, b"def")], b"abcdef"),
    ("overwrite inside", b"abcdef", [("w", 1, b"XY")], b"aXYdef"),
    ("overwrite across the end", b"abc", [("w", 2, b"XYZ")], b"abXYZ"),
    ("twice over the same bytes", b"abcdef", [("w", 1, b"XY"), ("w", 0, b"PQRS")], b"PQRSef"),
    ("cut then grow back", b"abcdef", [("t", 2, 0), ("w", 2, b"zz")], b"abzz"),
    ("cut to zero, write past", b"abc", [("t", 0, 0), ("w", 5, b"q")], b"\0\0\0\0\0q"),
    ("grow by truncate", b"ab", [("t", 5, 0)], b"ab\0\0\0"),
    ("hole then overwrite", b"abcdefgh", [("w", 6, b"X"), ("w", 1, b"Y"), ("w", 0, b"1234567")],
     b"1234567h"),
    ("empty durable file", b"", [("w", 0, b"new")], b"new"),
]


@pytest.mark.parametrize("durable,steps,now", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_roll_back_restores_the_durable_bytes(durable: bytes, steps: list[tuple[str, int, bytes | int]],
                                               now: bytes) -> None:
    cur, rolled = _apply(durable, steps)
    assert cur == now
    assert rolled == durable


def test_appends_read_nothing() -> None:
    j = FileJournal(10)

    def read_at(off: int, n: int) -> bytes:
        raise AssertionError("an append must not read the backing file")

    j.note_write(10, 100, 10, read_at)
    j.note_write(110, 5, 110, read_at)
    assert j.saved_bytes == 0 and j.unsynced_bytes == 105


def test_short_backing_read_is_an_error() -> None:
    j = FileJournal(10)
    with pytest.raises(OSError, match="short read"):
        j.note_write(0, 4, 10, lambda off, n: b"x")
