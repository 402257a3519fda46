"""Durable corruption of one file: XOR bits into chosen bytes, or cut the file short, then
fsync it, so the change survives a later power loss like a change on a real disk would
(docs/faultfs.md: corruption needs nothing from faultfs itself, only writes through the
mount). What changed is returned for the record: offsets with the bytes before and after
(hex), or the length cut to."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class AlterError(ValueError):
    """The change does not fit the file (an offset past its end, a bad mask or length)."""


def alter_file(path: Path, flips: Sequence[tuple[int, int]] = (), truncate: int | None = None) -> dict[str, Any]:
    """XOR each (offset, mask) into path's bytes, or cut it to `truncate` bytes; fsync it.
    Returns {"size", "changes": [{"offset", "before", "after"}]} or {"size", "truncated_to",
    "bytes_removed"}."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        out: dict[str, Any] = {"size": size}
        for offset, mask in flips:  # all checked before anything changes
            if not 0 <= offset < size or not 0 < mask < 256:
                raise AlterError(f"{path}: no byte {offset} to flip with mask {mask:#x} (size {size})")
        if truncate is not None:
            if not 0 <= truncate <= size:
                raise AlterError(f"{path}: cannot truncate {size} bytes to {truncate}")
            os.ftruncate(fd, truncate)
            out.update(truncated_to=truncate, bytes_removed=size - truncate)
        changes = []
        for offset, mask in flips:
            before = os.pread(fd, 1, offset)[0]
            os.pwrite(fd, bytes([before ^ mask]), offset)
            changes.append({"offset": offset, "before": f"{before:02x}", "after": f"{before ^ mask:02x}"})
        if flips:
            out["changes"] = changes
        os.fsync(fd)
    finally:
        os.close(fd)
    return out


def data_end(path: Path, chunk: int = 1 << 20) -> int:
    """The file's length without its zero-filled tail (preallocated space, as etcd's 64 MB WAL
    segments have): where the last non-zero byte ends, 0 for a file of zeros."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - chunk)
            f.seek(start)
            block = f.read(end - start)
            kept = len(block.rstrip(b"\0"))
            if kept:
                return start + kept
            end = start
    return 0


def parse_flip(text: str) -> tuple[int, int]:
    """`OFFSET:MASK` (decimal offset, mask in decimal or 0x hex)."""
    try:
        offset, mask = text.split(":", 1)
        return int(offset), int(mask, 0)
    except ValueError:
        raise AlterError(f"--flip {text!r}: expected OFFSET:MASK, e.g. 1234:0x10") from None
