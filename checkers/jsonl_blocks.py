"""A JSON-lines file read a block at a time into columns, in byte ranges by forked workers.

What the columnar readers share (`checkers.history_columns` for the linearizability checker,
`checkers.opcolumns` for stats and the report): each block of lines is parsed by orjson with
the cyclic garbage collector paused and handed to a `Sink`, which keeps what it needs as numpy
columns and drops the records. Read as the record-by-record reader reads it
(`checkers.history.read_jsonl`): a regular file only (a FIFO would block), a UTF-8 BOM before
the first line skipped, and a line that does not parse fine only as the file's last non-blank
one, and only if it may be a torn write (`checkers.history_text.loads_line`: cut short, not
written wrong; the caller says whether it may be skipped there). Anything else is `Unusual`,
and the caller reads the file record by record, which reports errors with their file and line.
"""

from __future__ import annotations

import codecs
import gc
import logging
import multiprocessing
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from checkers.history_text import BadLine, loads_line

log = logging.getLogger(__name__)

Offsets = npt.NDArray[np.int64]
#: Floats at least this large may be integers orjson rounded (beyond 64 bits), which the
#: record reader keeps exact (or times a float does not hold exactly).
EXACT_FLOAT = 2.0**53


class Unusual(Exception):
    """The file needs the record-by-record reader (for its error message, or its shape)."""


class HistoryReadError(Exception):
    """The file cannot be opened or read."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Millions of short-lived dicts make the cyclic collector rescan everything alive again
    and again (it more than doubles the parse time); none of them can form a cycle."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Interned:
    """Objects of one field, each distinct one (==) once, by first appearance."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.objects: list[Any] = []

    def add(self, col: list[Any]) -> npt.NDArray[np.int32]:
        codes, objects = self.codes, self.objects
        for v in dict.fromkeys(col):  # TypeError if unhashable
            if v not in codes:
                if type(v) is float and not -EXACT_FLOAT < v < EXACT_FLOAT:
                    raise Unusual("a float beyond 2**53 (an integer orjson rounded?)")
                codes[v] = len(objects)
                objects.append(v)
        return np.fromiter(map(codes.__getitem__, col), dtype=np.int32, count=len(col))

    def code(self, v: Any) -> int:
        c = self.codes.get(v)
        if c is None:
            c = self.codes[v] = len(self.objects)
            self.objects.append(v)
        return c


P = TypeVar("P", covariant=True)
T = TypeVar("T")


class Sink(Protocol[P]):
    """Takes the records of one byte range, block by block."""

    def add(self, recs: list[Any], offsets: Offsets | None) -> None:
        """The block's records (whatever JSON each line held) and, if the reader was asked
        for them, each one's byte offset in the file."""

    def finish(self) -> P:
        """What the range's records became (sent back from a worker process)."""


@dataclass(frozen=True)
class TornLine:
    """A last line skipped as a torn write: its number and why it does not parse."""

    line: int
    reason: str

    def warning(self, path: Path) -> str:
        """The record reader's warning for it, word for word."""
        return f"{path}:{self.line}: ignoring truncated last line ({self.reason})"


@dataclass
class Part(Generic[T]):
    """One byte range of the file: what its sink made of it, and its lines."""

    value: T
    lines: int
    torn: tuple[int, bytes] | None  # a bad line that may be the file's last: (line within the range, text)
    records: int


def read_parts(
    path: Path, sink: Callable[[], Sink[T]], *, workers: int | None, block: int, serial_below: int,
    offsets: bool = False,
) -> tuple[list[Part[T]], TornLine | None]:
    """The file's ranges read into sinks, in file order, and a torn last line if there is one
    (left out; the caller warns, or refuses it where the record reader would). A file of
    `serial_below` bytes or more is read by one forked process per core (`workers`
    overrides). Raises HistoryReadError or Unusual."""
    try:
        st = path.stat()
    except OSError as e:
        raise HistoryReadError(str(e)) from None
    if not stat.S_ISREG(st.st_mode):  # (a FIFO would block the read)
        raise HistoryReadError("not a regular file")
    size = st.st_size
    if workers is None:
        workers = 1 if size < serial_below else os.cpu_count() or 1
    ranges = _line_ranges(path, size, workers) if workers > 1 else [(0, size)]
    if len(ranges) == 1:
        parts = [_read_range(path, 0, size, sink, block, offsets)]
    else:
        try:
            with ProcessPoolExecutor(len(ranges), mp_context=multiprocessing.get_context("fork")) as pool:
                futures = [pool.submit(_read_range, path, a, b, sink, block, offsets) for a, b in ranges]
                parts = [f.result() for f in futures]
        except (BrokenProcessPool, OSError) as e:  # no fork, or a worker died: once more here
            log.warning("%s: reader processes failed (%s); reading in this process", path, e)
            parts = [_read_range(path, 0, size, sink, block, offsets)]
    return parts, _settle_torn(parts)


def _settle_torn(parts: list[Part[Any]]) -> TornLine | None:
    """Only the file's last non-blank line may be torn, and only if the record reader takes it
    for a torn write too."""
    torn: tuple[int, bytes] | None = None
    lines = 0
    for part in parts:
        if torn is not None and part.records:
            raise Unusual("a bad line before the last one")
        if part.torn is not None:
            torn = (lines + part.torn[0], part.torn[1])
        lines += part.lines
    if torn is None:
        return None
    n, line = torn
    try:
        loads_line(line)
    except BadLine as e:
        if not e.torn:  # written wrong, not cut short: an error the record reader reports
            raise Unusual("a corrupt last line") from None
        return TornLine(n, e.reason)
    # json reads what orjson does not (a lone surrogate): let the record reader judge
    raise Unusual("orjson and json disagree on a line")


def _line_ranges(path: Path, size: int, n: int) -> list[tuple[int, int]]:
    """n byte ranges of about equal size, each starting at the start of a line."""
    cuts = [0]
    try:
        with path.open("rb") as fh:
            for k in range(1, n):
                fh.seek(max(size * k // n - 1, cuts[-1]))
                fh.readline()  # to the end of the line the cut falls in
                cuts.append(min(fh.tell(), size))
    except OSError as e:
        raise HistoryReadError(str(e)) from None
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a] or [(0, size)]


def _read_range(
    path: Path, start: int, end: int, make: Callable[[], Sink[T]], block: int, offsets: bool
) -> Part[T]:
    """Parse the lines of bytes [start, end) (start at a line start) into a sink."""
    sink = make()
    torn: tuple[int, bytes] | None = None  # a bad line that may turn out to be the last one
    lineno = records = 0
    with gc_paused():
        try:
            fh = path.open("rb")
        except OSError as e:
            raise HistoryReadError(str(e)) from None
        with fh:
            fh.seek(start)
            pos, carry = start, b""
            if start == 0 and fh.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
                pos = len(codecs.BOM_UTF8)  # a UTF-8 BOM before the first line: not part of it
            else:
                fh.seek(start)
            while True:
                try:
                    chunk = fh.read(min(block, end - pos)) if pos < end else b""
                except OSError as e:
                    raise HistoryReadError(str(e)) from None
                base = pos - len(carry)  # the file offset of data[0]
                pos += len(chunk)
                data = carry + chunk
                if chunk:
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        carry = data
                        continue
                    lines, carry = data[:cut].split(b"\n"), data[cut + 1:]
                else:
                    lines, carry = ([data] if data else []), b""
                recs, kept, torn = _parse_block(lines, lineno, torn)
                if recs:
                    sink.add(recs, _offsets(lines, kept, base) if offsets else None)
                    records += len(recs)
                lineno += len(lines)
                if not chunk:
                    break
        return Part(sink.finish(), lineno, torn, records)


def _offsets(lines: list[bytes], kept: list[int] | None, base: int) -> Offsets:
    """The file offsets of the lines `kept` (None: every non-blank line) of a block."""
    lens = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    starts = np.empty(len(lines), dtype=np.int64)
    starts[0] = base
    np.cumsum(lens[:-1] + 1, out=starts[1:])
    starts[1:] += base
    if kept is None:
        return starts[lens > 0]
    return starts[np.asarray(kept, dtype=np.int64)]


def _parse_block(
    lines: list[bytes], first: int, torn: tuple[int, bytes] | None
) -> tuple[list[Any], list[int] | None, tuple[int, bytes] | None]:
    """One block's records, the indexes of their lines (None: every non-blank line) and the
    torn-line candidate (1-based line number, text) if the block ends with a line that does
    not parse."""
    nonblank = [line for line in lines if line]
    if not nonblank:
        return [], None, torn
    if torn is not None:
        raise Unusual("a bad line before the last one")
    try:
        return list(map(orjson.loads, nonblank)), None, None
    except orjson.JSONDecodeError:
        return _parse_lines(lines, first)


def _parse_lines(lines: list[bytes], first: int) -> tuple[list[Any], list[int], tuple[int, bytes] | None]:
    """One line at a time: the records, their lines, and the one bad line if it is the
    block's last."""
    recs: list[Any] = []
    kept: list[int] = []
    torn: tuple[int, bytes] | None = None
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        if torn is not None:
            raise Unusual("a bad line before the last one")
        try:
            recs.append(orjson.loads(line))
            kept.append(n)
        except orjson.JSONDecodeError:
            torn = (first + n + 1, line)
    return recs, kept, torn


#: A run of digits that may be an integer beyond 64 bits (orjson gives it as a float).
_LONG_NUMBER = re.compile(rb"\d{19}")


def loads_exact(line: bytes) -> Any:
    """A line read again as the record reader parses it: by orjson, unless a long integer may
    be in it (json keeps it exact where orjson rounds it to a float)."""
    if _LONG_NUMBER.search(line) is None:
        return orjson.loads(line)
    try:
        return loads_line(line)
    except BadLine:  # (nested deeper than json goes: the first pass took orjson's)
        return orjson.loads(line)


#: Bytes read ahead when lines are read again from their offsets.
READ_AHEAD = 1 << 16


def lines_at(path: Path, offsets: Iterable[int]) -> Iterator[bytes]:
    """The lines starting at these byte offsets (without their newline), read again from the
    file a block at a time (offsets in increasing order read it front to back, each block
    once). Plain reads, not a memory map: a sample spread over a large file would otherwise
    count every page of it in the process's memory."""
    with path.open("rb") as fh:
        buf, base = b"", 0
        for start in offsets:
            rel = start - base
            nl = buf.find(b"\n", rel) if 0 <= rel <= len(buf) else -1
            if nl < 0:
                fh.seek(start)
                buf, base, rel = fh.read(READ_AHEAD), start, 0
                while (nl := buf.find(b"\n")) < 0:
                    more = fh.read(READ_AHEAD)
                    if not more:
                        nl = len(buf)
                        break
                    buf += more
            yield buf[rel:nl]
