"""Joining the NodeFiles of all nodes into the cluster-wide facts, as check() would have built
them scanning the same events as dicts.

State machine safety compares every apply with the first apply of its index (nodes in name
order, each node in file order). scan.scan_node does it one event at a time; here numpy does it
on the apply columns, and only the applies a violation cites (or leader completeness judges) are
parsed again, from their byte offsets. Violations are added in the order scan_node adds them, so
the same ones are kept under the per-kind cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from checkers.safety import violations as v
from checkers.safety.events import parse_event_bytes
from checkers.safety.facts import MAX_DIVERGENT_JUDGED, ClusterFacts, FirstApply
from checkers.safety.nodefile import ApplyColumns, NodeFile
from checkers.safety.scan import NodeSummary
from checkers.safety.violations import Event

Ints = npt.NDArray[np.int64]


#: The first-apply table is dense (one slot per log index) up to this many slots per apply
#: row (plus DENSE_SLACK); sparser indexes are sorted instead.
DENSE_PER_ROW = 2
DENSE_SLACK = 1 << 20


@dataclass
class _Applies:
    """The apply columns of all nodes, numbered end to end (node order, then file order)."""

    cols: list[ApplyColumns]
    #: first row of each node, and the number of rows at the end
    bounds: Ints
    #: per node, per row: the row of the first apply of its index
    first: list[Ints]
    #: dense: the row of the first apply of each index (number of rows: none); or, sorted:
    #: the rows of the first applies of `unique`, the indexes applied (ascending)
    table: Ints
    unique: Ints | None

    def node_of(self, row: int) -> int:
        return int(np.searchsorted(self.bounds, row, side="right")) - 1

    def _at(self, column: str, row: int) -> int:
        k = self.node_of(row)
        return int(getattr(self.cols[k], column)[row - self.bounds[k]])

    def index(self, row: int) -> int:
        return self._at("index", row)

    def term(self, row: int) -> int:
        return self._at("term", row)

    def offset(self, row: int) -> int:
        return self._at("offset", row)

    def first_row(self, row: int) -> int:
        k = self.node_of(row)
        return int(self.first[k][row - self.bounds[k]])

    def first_of_index(self, index: int) -> int | None:
        if self.unique is None:
            if 0 <= index < len(self.table) and self.table[index] < self.bounds[-1]:
                return int(self.table[index])
            return None
        pos = int(np.searchsorted(self.unique, index))
        if pos < len(self.unique) and self.unique[pos] == index:
            return int(self.table[pos])
        return None


def merge(files: Sequence[NodeFile]) -> tuple[ClusterFacts, list[NodeSummary]]:
    """The cluster-wide facts (not yet finished) and the node summaries; files in node order."""
    facts = ClusterFacts()
    for nf in files:
        _merge_local(facts, nf)
    ap, mismatched = _join(files)
    with ExitStack() as stack:
        lines = _Lines(files, stack)
        divergent = [c.index[m - ap.bounds[k]] for k, (c, m) in enumerate(
            zip(ap.cols, mismatched, strict=True))]
        judged = set(np.unique(np.concatenate(divergent) if divergent else np.zeros(0))[
            :MAX_DIVERGENT_JUDGED].tolist())
        for k, nf in enumerate(files):
            _add_violations(facts, nf, k, mismatched[k], ap, lines, judged)
        for ev in facts.snapshot_checks:  # finish() looks their index up in facts.applied
            index = _as_index(ev["index"])
            row = None if index is None else ap.first_of_index(index)
            if index is not None and row is not None and ap.term(row) != ev["term"]:
                _first_apply(facts, index, row, ap, lines)
    return facts, [nf.summary for nf in files]


def _as_index(value: Any) -> int | None:
    """The int key a dict of int keys finds for value (5.0 and True find 5 and 1), if any."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _merge_local(facts: ClusterFacts, nf: NodeFile) -> None:
    """Add one node's share, in the order scan_node would have recorded it."""
    local = nf.facts
    for term, lives in local.leaders.items():
        held = facts.leaders.setdefault(term, {})
        for life, ev in lives.items():
            held.setdefault(life, ev)
    for term, claims in local.lead_claims.items():
        named = facts.lead_claims.setdefault(term, {})
        for lead, ev in claims.items():
            named.setdefault(lead, ev)
    for index, conf in local.confs.items():
        facts.confs.setdefault(index, conf)
    facts.snapshot_checks.extend(local.snapshot_checks)
    facts.pending_membership.extend(local.pending_membership)
    facts.spans[nf.node] = local.spans.get(nf.node, [])


def _join(files: Sequence[NodeFile]) -> tuple[_Applies, list[Ints]]:
    """Number the applies of all nodes, find the first apply of every index, and the rows
    (per node) whose (term, digest) differ from it."""
    cols = [nf.applies for nf in files]
    bounds = np.concatenate([[0], np.cumsum([len(c.index) for c in cols])]).astype(np.int64)
    n = int(bounds[-1])
    top = max((int(c.index.max()) + 1 for c in cols if len(c.index)), default=0)
    unique: Ints | None
    if top <= DENSE_PER_ROW * n + DENSE_SLACK:  # a slot per index
        table = np.full(top, n, dtype=np.int64)
        for k, c in enumerate(cols):  # the first row of an index is its lowest
            np.minimum.at(table, c.index, np.arange(bounds[k], bounds[k + 1], dtype=np.int64))
        slots = [c.index for c in cols]
        unique = None
    else:  # a slot per index applied, found by sorting
        index = np.concatenate([c.index for c in cols])
        order = np.argsort(index, kind="stable")  # stable: an index's first row comes first
        ordered = index[order]
        starts = np.ones(n, dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        table, unique = order[starts].astype(np.int64), ordered[starts]
        slots = [np.searchsorted(unique, c.index) for c in cols]
    first = [table[slot] for slot in slots]
    # the first apply's term and digest, per slot, from the node that made it
    first_term = np.zeros(len(table), dtype=np.int64)
    first_digest = np.zeros(len(table), dtype=np.uint64)
    for k, c in enumerate(cols):
        own = first[k] == np.arange(bounds[k], bounds[k + 1])
        first_term[slots[k][own]] = c.term[own]
        first_digest[slots[k][own]] = c.digest[own]
    mismatched = [
        (np.flatnonzero((c.term != first_term[slots[k]]) | (c.digest != first_digest[slots[k]]))
         + bounds[k]).astype(np.int64)
        for k, c in enumerate(cols)]
    return _Applies(cols, bounds, first, table, unique), mismatched


class _Lines:
    """Parses the lines of cited applies again, from the node files and byte offsets."""

    def __init__(self, files: Sequence[NodeFile], stack: ExitStack) -> None:
        self.files = files
        self.stack = stack
        self.open: dict[int, BinaryIO] = {}

    def event(self, k: int, offset: int) -> Event:
        f = self.open.get(k)
        if f is None:
            f = self.open[k] = self.stack.enter_context(Path(self.files[k].path).open("rb"))
        f.seek(offset)
        return parse_event_bytes(f.readline())


def _boot_at(nf: NodeFile, offset: int) -> int:
    """The boot the node's scan was in at the event at offset."""
    boot = 0
    for at, b in nf.boot_marks:
        if at > offset:
            break
        boot = b
    return boot


def _first_apply(facts: ClusterFacts, index: int, row: int, ap: _Applies, lines: _Lines
                 ) -> FirstApply:
    first = facts.applied.get(index)
    if first is None:
        k = ap.node_of(row)
        offset = ap.offset(row)
        ev = lines.event(k, offset)
        nf = lines.files[k]
        first = (ev["term"], ev["digest"], nf.node, _boot_at(nf, offset), ev["ts"],
                 ev.get("kind"))
        facts.applied[index] = first
    return first


def _add_violations(facts: ClusterFacts, nf: NodeFile, k: int, rows: Ints, ap: _Applies,
                    lines: _Lines, judged: set[int]) -> None:
    """This node's own violations and its applies that differ from the first, interleaved by
    file offset (at one event, its own violation came first), then the counts past the cap."""
    cap_log = facts.log
    offsets = ap.cols[k].offset[rows - ap.bounds[k]]
    done = 0
    for seq, violation in nf.violations:
        upto = int(np.searchsorted(offsets, seq, side="left"))
        _diverged(facts, nf, k, rows[done:upto], ap, lines, judged)
        done = max(done, upto)
        cap_log.add(violation)
    _diverged(facts, nf, k, rows[done:], ap, lines, judged)
    kept: dict[str, int] = {}
    for _seq, violation in nf.violations:
        kept[violation.kind] = kept.get(violation.kind, 0) + 1
    for kind, n in nf.counts.items():
        if n > kept.get(kind, 0):
            cap_log.counts[kind] = cap_log.counts.get(kind, 0) + n - kept.get(kind, 0)


def _diverged(facts: ClusterFacts, nf: NodeFile, k: int, rows: Ints, ap: _Applies,
              lines: _Lines, judged: set[int]) -> None:
    """facts.diverged for each row, parsing only the rows whose evidence can be used: all of
    them until the per-kind cap is reached, then those leader completeness judges (the rest
    are only counted, as the cap would)."""
    indexes = ap.cols[k].index[rows - ap.bounds[k]]
    counts = facts.log.counts
    done = 0
    for row, index in zip(rows.tolist(), indexes.tolist(), strict=True):
        if counts.get(v.STATE_MACHINE_SAFETY, 0) >= v.MAX_PER_KIND:
            break
        _one_diverged(facts, nf, k, row, index, ap, lines)
        done += 1
    rest, rest_indexes = rows[done:], indexes[done:]
    if not len(rest):
        return
    wanted = np.isin(rest_indexes, np.fromiter(judged, dtype=np.int64, count=len(judged)))
    counts[v.STATE_MACHINE_SAFETY] += int((~wanted).sum())
    for row, index in zip(rest[wanted].tolist(), rest_indexes[wanted].tolist(), strict=True):
        _one_diverged(facts, nf, k, row, index, ap, lines)


def _one_diverged(facts: ClusterFacts, nf: NodeFile, k: int, row: int, index: int,
                  ap: _Applies, lines: _Lines) -> None:
    first = _first_apply(facts, index, ap.first_row(row), ap, lines)
    offset = ap.offset(row)
    facts.diverged(index, first, lines.event(k, offset), nf.node, _boot_at(nf, offset))
