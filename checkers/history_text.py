"""History files as text, strictly, with errors that name the file and line.

Only regular files are read: a FIFO or a device is refused at once (opened without waiting
for a writer), as is a directory. Text is UTF-8 (a leading BOM is skipped); a byte that is not
is an error naming its line. A JSON line is parsed as JSON defines it: no NaN or Infinity, no
number that does not fit a double, no integer longer than Python converts, no nesting past the
parser's stack. Whether a bad line may be a torn write (a killed writer's last line) is part of
the error, for the caller to decide whether it may skip it.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("checkers.history")


class HistoryError(ValueError):
    """A history that cannot be read; the message names the file and line."""


class BadLine(ValueError):
    """A line that is not a JSON value. `torn`: it may be a record cut short (not JSON, or a
    UTF-8 sequence cut in half), rather than one written wrong."""

    def __init__(self, reason: str, torn: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.torn = torn


def warn(warnings: list[str] | None, message: str) -> None:
    """A reader's warning: to `warnings` if the caller collects them, else to the log."""
    if warnings is None:
        log.warning("%s", message)
    else:
        warnings.append(message)


def open_regular(path: str | Path, error: type[Exception] = HistoryError) -> BinaryIO:
    """The file opened for reading; `error` ("<path>: cannot read: why") unless it is a
    regular file (also the config reader's: history and config files are refused alike)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise error(f"{path}: cannot read: {kind}")
    return os.fdopen(fd, "rb")


def read_bytes(path: str | Path) -> bytes:
    """The whole file, without a leading UTF-8 BOM."""
    with open_regular(path) as fh:
        try:
            data = fh.read()
        except OSError as e:
            raise HistoryError(f"{path}: cannot read: {e.strerror or e}") from None
    return data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data


def read_text(path: str | Path) -> str:
    """The whole file as text; HistoryError naming the line of a byte that is not UTF-8."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise HistoryError(f"{path}:{line}: {_not_utf8(data, e)}") from None


def _not_utf8(data: bytes, e: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"


def _refuse_constant(name: str) -> Any:
    raise BadLine(f"{name} is not a JSON number", torn=False)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BadLine(f"number out of range: {text[:30]}", torn=False)
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)


def loads_line(line: bytes | str) -> Any:
    """One JSON value from one line; BadLine if it is not one (see the module's doc)."""
    if isinstance(line, bytes):
        raw = line
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadLine(f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})", torn=True) from None
    try:
        return _DECODER.decode(line)
    except json.JSONDecodeError as e:
        raise BadLine(e.msg, torn=True) from None
    except RecursionError:
        raise BadLine("nested too deeply", torn=False) from None
    except ValueError as e:  # BadLine from the hooks, or an integer too long to convert
        if isinstance(e, BadLine):
            raise
        if "digits" not in str(e):  # pragma: no cover - no other ValueError is known
            raise BadLine(" ".join(str(e).split()), torn=False) from None
        raise BadLine(f"an integer of more than {sys.get_int_max_str_digits()} digits", torn=False) from None
