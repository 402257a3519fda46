"""A node's events.jsonl as the report needs it, without a dict per apply and commit.

A long run's node writes an apply (and often a commit) per log entry: millions of events, of
which the Raft timeline (`reports.raft`) uses only the times and boots. In the order the
timeline sorts them (by `ts`, stably), the applies and commits between two other events of
one boot change nothing but the time of the last one, so only the first and last of each such
stretch are kept; every other event is kept. The file is read as columns (type, ts, boot and
where each line starts) and only the kept lines are parsed again.

Anything unusual (a bad line before the last one, a torn last line with no event before it, a
record that is not an object, an unhashable boot) is read the tolerant way, as before
(`checkers.rundata.read_records`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from checkers.history import Record
from checkers.history_text import warn
from checkers.jsonl_blocks import (
    HistoryReadError,
    Interned,
    Offsets,
    Part,
    Unusual,
    gc_paused,
    lines_at,
    loads_exact,
    read_parts,
)
from checkers.rundata import read_records, torn_note

log = logging.getLogger(__name__)

#: Event types a long run writes per log entry; the rest are kept whole.
BULK = frozenset({"apply", "commit"})
BLOCK = 1 << 23
SERIAL_BELOW_BYTES = 64 << 20
#: The clock record beside a node's events in a run with clock faults (`reports.clocks`).
CLOCK_APPLIED = "clock.applied"


class _Sink:
    def __init__(self) -> None:
        self.boot = Interned()
        self.blocks: dict[str, list[npt.NDArray[Any]]] = {"bulk": [], "ts": [], "boot": [], "offset": []}

    def add(self, recs: list[Any], offsets: Offsets | None) -> None:
        try:
            types = [d.get("type") for d in recs]
            stamps = [d.get("ts") for d in recs]
            boots = [d.get("boot") for d in recs]
        except AttributeError:
            raise Unusual("an event is not a JSON object") from None
        try:
            self.blocks["boot"].append(self.boot.add(boots))
        except TypeError:
            raise Unusual("an unhashable boot") from None
        self.blocks["bulk"].append(np.fromiter((type(t) is str and t in BULK for t in types), dtype=bool,
                                               count=len(types)))
        try:
            if set(map(type, stamps)) <= {int, float}:
                ts = np.array(stamps, dtype=np.float64)
            else:  # the timeline skips events without a numeric ts
                ts = np.fromiter((float(x) if type(x) is int or type(x) is float else math.nan for x in stamps),
                                 dtype=np.float64, count=len(stamps))
        except OverflowError:
            raise Unusual("a ts beyond a float") from None
        self.blocks["ts"].append(ts)
        assert offsets is not None
        self.blocks["offset"].append(offsets)

    def finish(self) -> tuple[dict[str, npt.NDArray[Any]], list[Any]]:
        return {name: np.concatenate(arrs) if arrs else np.zeros(0) for name, arrs in self.blocks.items()}, \
            self.boot.objects


def read_node_events(path: Path, problems: list[str]) -> list[Record]:
    """The node's events in file order, less the applies and commits inside a stretch of
    them; a file that is not plain is read tolerantly, whole, and what was skipped is noted in
    `problems` as `read_records` notes it. A node with a clock record (`CLOCK_APPLIED`) has
    every event: its readings are put on true time in the order it wrote them, where one left
    out could move the next (`reports.clocks.ClockMap`)."""
    if (path.parent / CLOCK_APPLIED).is_file():
        return read_records(path, tolerant=True, problems=problems)
    try:
        parts, torn = read_parts(path, _Sink, workers=1, block=BLOCK, serial_below=SERIAL_BELOW_BYTES, offsets=True)
    except (Unusual, HistoryReadError) as e:
        log.debug("%s: reading every event (%s)", path, e)
        return read_records(path, tolerant=True, problems=problems)
    if torn is not None:
        if not any(part.records for part in parts):  # as the record reader: not torn without a record before
            return read_records(path, tolerant=True, problems=problems)
        warn(None, torn.warning(path))
        problems.append(torn_note(path, torn.line))
    with gc_paused():
        rows, offsets = _kept(parts)
        if not len(rows):
            return []
        return list(map(loads_exact, lines_at(path, offsets[rows].tolist())))


def _kept(parts: list[Part[Any]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The positions of the events kept, and every event's offset."""
    boots = Interned()
    bulk, ts, boot, offset = [], [], [], []
    for part in parts:
        arrays, objects = part.value
        if not len(arrays["bulk"]):
            continue
        lut = np.fromiter(map(boots.code, objects), dtype=np.int64, count=len(objects))
        bulk.append(arrays["bulk"].astype(bool))
        ts.append(arrays["ts"])
        boot.append(lut[arrays["boot"].astype(np.int64)])
        offset.append(arrays["offset"].astype(np.int64))
    if not bulk:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    is_bulk, stamp, boot_code, offsets = (np.concatenate(x) for x in (bulk, ts, boot, offset))
    keep = ~is_bulk
    timed = np.flatnonzero(~np.isnan(stamp))
    order = timed[np.argsort(stamp[timed], kind="stable")]
    b, k = is_bulk[order], boot_code[order]
    # a bulk event whose neighbours in time order are bulk events of its boot changes nothing
    same_as_prev = np.zeros(len(order), dtype=bool)
    same_as_prev[1:] = b[1:] & b[:-1] & (k[1:] == k[:-1])
    same_as_next = np.zeros(len(order), dtype=bool)
    same_as_next[:-1] = same_as_prev[1:]
    keep[order[b & ~(same_as_prev & same_as_next)]] = True
    return np.flatnonzero(keep), offsets
