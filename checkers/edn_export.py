"""history.edn of a long run, converted in byte ranges by forked processes.

The same text as `checkers.history.write_edn_from_jsonl` (which streams the file on one core):
each range's records are turned into Jepsen op maps (`to_edn_record`) by a reader process
into a part file of its own, and the parts are joined in file order. The file is read as
there (`checkers.jsonl_blocks`: a regular file, a BOM skipped, only a torn last line skipped
with its warning). A file below `SERIAL_BELOW_BYTES`, or one with anything unusual in it (a bad
line before the last one, a corrupt last line, a record that is not an object or nested too
deeply for the EDN writer, a line orjson and json disagree on), is exported by
`write_edn_from_jsonl`, which also gives its errors with file and line.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from checkers.history import to_edn_record, write_edn_from_jsonl
from checkers.history_text import warn
from checkers.jsonl_blocks import HistoryReadError, Offsets, Unusual, read_parts

log = logging.getLogger(__name__)

#: Below this many bytes one process streams the file (a fork costs more than it saves).
SERIAL_BELOW_BYTES = 64 << 20
BLOCK = 1 << 22


class _PartWriter:
    """One byte range's records as EDN text, in a part file named by the range's start."""

    def __init__(self, parts_dir: str) -> None:
        self.fh = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=parts_dir, delete=False, suffix=".edn")
        self.count = 0

    def add(self, recs: list[Any], offsets: Offsets | None) -> None:
        if not all(type(r) is dict for r in recs):
            raise Unusual("a record is not a JSON object")
        try:
            text = "\n ".join(map(to_edn_record, recs))
        except RecursionError:
            raise Unusual("a record nested too deeply") from None
        self.fh.write(("\n " if self.count else "") + text)
        self.count += len(recs)

    def finish(self) -> tuple[str, int]:
        self.fh.close()
        return self.fh.name, self.count


def export_edn(source: str | Path, path: str | Path, workers: int | None = None) -> int:
    """Write history.jsonl `source` as Jepsen EDN to `path`; returns the number of records.
    Errors as `write_edn_from_jsonl`'s; nothing is left at `path` after one."""
    source, path = Path(source), Path(path)
    try:
        small = source.stat().st_size < SERIAL_BELOW_BYTES
    except OSError:
        small = True  # the serial export says why it cannot read it
    if (workers is None and small) or workers == 1:
        return write_edn_from_jsonl(source, path)
    with tempfile.TemporaryDirectory(prefix=".edn-parts-", dir=path.parent) as parts_dir:
        try:
            parts, torn = read_parts(source, functools.partial(_PartWriter, parts_dir), workers=workers,
                                     block=BLOCK, serial_below=SERIAL_BELOW_BYTES)
        except (Unusual, HistoryReadError) as e:
            log.debug("%s: exporting on one core (%s)", source, e)
            return write_edn_from_jsonl(source, path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as out:
                out.write("[")
                count = 0
                for part in parts:
                    name, n = part.value
                    if not n:
                        continue
                    if count:
                        out.write("\n ")
                    with open(name, encoding="utf-8") as fh:
                        shutil.copyfileobj(fh, out, 1 << 20)
                    count += n
                out.write("]\n")
            if torn is not None:  # (the one-core export skips it after any record, or none)
                warn(None, torn.warning(source))
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return count
