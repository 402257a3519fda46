"""One node's events.jsonl read and scanned in one pass, for check_run: the same per-node checks
as scan.scan_node, but applies and commits (nearly all of a long run's events) are never turned
into dicts.

Apply and commit lines in raftkv's own form are read in blocks by numpy (templates.py). Applies
become columns (index, term, digest, byte offset); only a jump in the applied indexes parses its
line to call the same NodeState.apply_jump. A stretch of applies and commits between two other
events is applied to NodeState in one step when none of it can break an invariant, else event
by event; the commit events NodeState keeps as evidence are parsed only when something may cite
them. Every other event is parsed by orjson and goes through the same NodeState handlers.
Whatever needs all nodes (state machine safety) is left to merge.py, which parses the lines of
the applies it cites from their offsets.

The result is a NodeFile: compact enough to return from a worker process (numpy columns and the
few events the cluster-wide checks cite), so that nodes can be read in parallel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from checkers.safety.events import EventLogError, judge_line, parse_event_bytes
from checkers.safety.facts import ClusterFacts
from checkers.safety.scan import EventFormatError, NodeState, NodeSummary, clip_event
from checkers.safety.templates import (
    PADDING,
    ApplyLines,
    CommitLines,
    find_template_lines,
    line_bounds,
)
from checkers.safety.violations import Event, Violation, ViolationLog

Ints = npt.NDArray[np.int64]

#: Bytes read per block: large enough to amortise numpy's per-call cost, small to stream.
BLOCK_BYTES = 8 << 20

_DIGEST = re.compile(r"[0-9a-f]{16}")
_INT64_MAX = 2**63 - 1


class NotColumnar(Exception):
    """An apply event whose index, term or digest does not fit the columns (not an int64, not
    16 lowercase hex digits): outside the events contract; check_run then uses the dict path."""


@dataclass
class SequencedLog(ViolationLog):
    """A ViolationLog that remembers where in the file (byte offset) each kept violation was
    found, so merge.py can interleave them with the cross-node ones in the order check() adds
    them."""

    seq: int = 0
    seqs: list[int] = field(default_factory=list)

    def add(self, violation: Violation) -> None:
        kept = len(self.reported)
        super().add(violation)
        if len(self.reported) > kept:
            self.seqs.append(self.seq)


@dataclass
class ApplyColumns:
    """Every apply of one node in file order (applies of all boots)."""

    index: Ints
    term: Ints
    digest: npt.NDArray[np.uint64]
    #: byte offset of the event's line in events.jsonl
    offset: Ints


@dataclass
class NodeFile:
    """What one node's events contribute to the verdict."""

    node: str
    path: Path
    summary: NodeSummary
    #: this node's leaders, lead claims, confs, snapshots, pending membership checks, spans
    facts: ClusterFacts
    #: the violations found in this node alone, kept as check() keeps them, with their offsets
    violations: list[tuple[int, Violation]]
    counts: dict[str, int]
    applies: ApplyColumns
    #: (offset, boot): from the event at offset on, the node's applies belong to boot
    boot_marks: list[tuple[int, int]]
    warnings: list[str]


@dataclass
class _LazyCommits:
    """Stand-ins for the commit events a template commit leaves in NodeState (commit_ev,
    durable_commit_ev, durable_term_ev): their lines are parsed only before anything that may
    cite them (any handler) and at the end of the block."""

    commit: Event = field(default_factory=dict)
    durable: Event = field(default_factory=dict)
    term: Event = field(default_factory=dict)
    commit_line: int = -1
    durable_line: int = -1
    term_line: int = -1

    def resolve(self, block: _Block) -> None:
        if max(self.commit_line, self.durable_line, self.term_line) < 0:
            return
        st = block.s.st
        parsed: dict[int, Event] = {}

        def event(k: int) -> Event:
            if k not in parsed:
                parsed[k] = block.event(k)
            return parsed[k]

        if st.commit_ev is self.commit:
            st.commit_ev = event(self.commit_line)
        if st.durable_commit_ev is self.durable:
            st.durable_commit_ev = event(self.durable_line)
        if st.durable_term_ev is self.term:
            st.durable_term_ev = event(self.term_line)
        self.commit_line = self.durable_line = self.term_line = -1


@dataclass
class _Scan:
    """State of the pass over one node's file."""

    node: str
    path: Path
    st: NodeState
    log: SequencedLog
    expect: int = -1
    boot: int = 0
    applies: int = 0
    others: int = 0
    prev: Event | None = None
    lazy: _LazyCommits = field(default_factory=_LazyCommits)
    columns: list[tuple[Ints, Ints, npt.NDArray[np.uint64], Ints]] = field(default_factory=list)
    boot_marks: list[tuple[int, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def scan_node_file(node: str, path: Path, altered: tuple[float, ...] = ()) -> NodeFile:
    """Read and check one node's events.jsonl (see the module doc); `altered` as for
    scan.scan_node.

    Raises EventLogError / EventFormatError as the dict path would for the same file (possibly
    naming another bad line first), NotColumnar for applies outside the contract."""
    log = SequencedLog()
    facts = ClusterFacts(log=log)
    s = _Scan(node, path, NodeState(node, facts, altered=sorted(altered)), log)
    try:
        f = path.open("rb")
    except OSError as e:
        raise EventLogError(f"{path}: cannot read node events: {e.strerror}") from e
    with f:
        base, lineno, carry = 0, 1, bytearray()
        while True:
            # the block is read straight after the carried partial line, padding zeroed
            buf = bytearray(len(carry) + BLOCK_BYTES + PADDING)
            buf[:len(carry)] = carry
            with memoryview(buf) as view:
                got = f.readinto(view[len(carry):len(carry) + BLOCK_BYTES])
            at_eof = got < BLOCK_BYTES
            size = len(carry) + got
            if not size:
                break
            cut = size if at_eof else buf.rfind(b"\n", 0, size) + 1
            if cut == 0:
                carry = buf[:size]  # a line longer than a block: read on
                continue
            used, lines = _Block(s, buf, cut, base, lineno, at_eof).scan()
            carry = buf[used:size]
            base, lineno = base + used, lineno + lines
            if at_eof and not carry:
                break
    st = s.st
    st.expect = s.expect
    st.close_span()
    if s.prev is not None:
        st.timeline.close(s.prev["ts"])
    facts.spans[node] = st.spans
    summary = NodeSummary(node, s.others + s.applies, s.applies, st.boots_seen, st.max_term,
                          st.max_applied, st.timeline, st.refusals)
    return NodeFile(node, path, summary, facts, list(zip(log.seqs, log.reported, strict=True)),
                    dict(log.counts), _columns(s.columns), s.boot_marks, s.warnings)


def _columns(parts: list[tuple[Ints, Ints, npt.NDArray[np.uint64], Ints]]) -> ApplyColumns:
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return ApplyColumns(empty, empty, np.zeros(0, dtype=np.uint64), empty)
    return ApplyColumns(np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]),
                        np.concatenate([p[2] for p in parts]),
                        np.concatenate([p[3] for p in parts]))


class _Block:
    """The lines of one block, scanned in order: runs of template applies, template commits,
    and the other events as dicts. A bad last line of a block that is not the file's last is
    left to be judged with the line after it."""

    def __init__(self, s: _Scan, buf: bytearray, cut: int, base: int, lineno: int,
                 at_eof: bool) -> None:
        self.s, self.buf, self.cut, self.base = s, buf, cut, base
        self.lineno, self.at_eof = lineno, at_eof
        arr = np.frombuffer(buf, dtype=np.uint8)
        starts, ends = line_bounds(arr, cut)
        self.n_full = len(ends)
        if self.n_full == 0 or ends[-1] + 1 < cut:  # a last line without newline (at EOF)
            starts = np.append(starts, ends[-1] + 1 if self.n_full else 0)
            ends = np.append(ends, cut)
        self.starts, self.ends = starts, ends
        self.applies, self.commits = find_template_lines(arr, starts[:self.n_full],
                                                         ends[:self.n_full])
        self.prev_line = -1  # the previous event is this line of the block (else s.prev)

    def line(self, k: int) -> bytearray:
        return self.buf[int(self.starts[k]):int(self.ends[k])]

    def text(self, k: int) -> str:
        """Line k with its newline (if it has one), decoded as the reader decodes it."""
        end = min(int(self.ends[k]) + 1, self.cut)  # a last line without newline ends at cut
        return self.buf[int(self.starts[k]):end].decode("utf-8", errors="replace")

    def event(self, k: int) -> Event:
        return parse_event_bytes(self.line(k))

    def previous(self) -> Event | None:
        return self.event(self.prev_line) if self.prev_line >= 0 else self.s.prev

    def scan(self) -> tuple[int, int]:
        """Scan the block; returns the (bytes, lines) used."""
        n_lines = len(self.starts)
        template = np.zeros(n_lines, dtype=bool)
        template[self.applies.lines] = True
        template[self.commits.lines] = True
        others, used_lines = self._parse_others(np.flatnonzero(~template).tolist(), n_lines)
        if used_lines < n_lines:  # drop the template lines after a deferred one
            a = int(np.searchsorted(self.applies.lines, used_lines))
            c = int(np.searchsorted(self.commits.lines, used_lines))
            ap, cm = self.applies, self.commits
            self.applies = ApplyLines(ap.lines[:a], ap.boot[:a], ap.index[:a], ap.term[:a],
                                      ap.digest[:a])
            self.commits = CommitLines(cm.lines[:c], cm.boot[:c], cm.index[:c], cm.term[:c])
        self._scan_events(others)
        return (int(self.starts[used_lines]) if used_lines < n_lines else self.cut), used_lines

    def _parse_others(self, lines: list[int], n_lines: int
                      ) -> tuple[list[tuple[int, Event]], int]:
        """Parse the lines that are not template lines: one orjson call for the block when they
        are all fine, else line by line to skip torn lines and name a bad one."""
        buf, starts, ends, cut = self.buf, self.starts, self.ends, self.cut
        texts = [buf[int(starts[k]):min(int(ends[k]) + 1, cut)] for k in lines]
        if texts:
            try:
                parsed = orjson.loads(b"[" + b",".join(texts) + b"]")
            except orjson.JSONDecodeError:
                parsed = None
            if (parsed is not None and len(parsed) == len(texts)
                    and all(type(ev) is dict for ev in parsed)):
                return list(zip(lines, parsed, strict=True)), n_lines
        out: list[tuple[int, Event]] = []
        s = self.s
        for i, k in enumerate(lines):
            line = texts[i].decode("utf-8", errors="replace")
            if not line.strip():
                continue
            last = k == n_lines - 1
            nxt = None if last else self.text(k + 1)
            try:
                ev, warning = judge_line(s.path, self.lineno + k, line, nxt)
            except EventLogError:
                if last and not self.at_eof:
                    return out, k
                raise
            if last and not self.at_eof and warning is not None:
                return out, k  # decided with the next block's first line
            if warning is not None:
                s.warnings.append(warning)
            if ev is not None:
                out.append((k, ev))
        return out, n_lines

    # -- the events in line order --------------------------------------------------------

    def _scan_events(self, others: list[tuple[int, Event]]) -> None:
        s, ap, cm = self.s, self.applies, self.commits
        self.index = ap.index.tolist()
        # applies whose index does not follow the previous apply's: the only ones to look at
        self.jumps = (np.flatnonzero(np.diff(ap.index) != 1) + 1).tolist()
        self.jump_at = 0
        self.extra: list[tuple[int, int, int, int]] = []
        o_lines = [k for k, _ev in others]
        a_upto = np.searchsorted(ap.lines, o_lines).tolist() + [len(ap.lines)]
        c_upto = np.searchsorted(cm.lines, o_lines).tolist() + [len(cm.lines)]
        a_done = c_done = 0
        ev: Any = None
        try:
            for i in range(len(others) + 1):
                a_end, c_end = a_upto[i], c_upto[i]
                if (a_end > a_done or c_end > c_done) and not self._stretch(
                        a_done, a_end, c_done, c_end):
                    self._one_by_one(a_done, a_end, c_done, c_end)
                a_done, c_done = a_end, c_end
                if i < len(others):
                    k, ev = others[i]
                    self._other(k, ev)
                    ev = None
        except KeyError as e:
            raise EventFormatError(f"node {s.node}: event lacks field {e}: {clip_event(ev)}"
                                   ) from e
        except TypeError as e:
            raise EventFormatError(f"node {s.node}: malformed event ({e}): {clip_event(ev)}"
                                   ) from e
        s.lazy.resolve(self)
        if self.prev_line >= 0:
            s.prev = self.event(self.prev_line)
        self._columns()

    def _stretch(self, a0: int, a1: int, c0: int, c1: int) -> bool:
        """Template applies a0..a1-1 and commits c0..c1-1 (no other event between them) in one
        step, when nothing in them needs a look: the applies follow on from the expected
        index, the commits are of this boot and neither their term (past the node's current
        one) nor their index go back. False (nothing done) otherwise."""
        s, ap, cm = self.s, self.applies, self.commits
        st = s.st
        if a1 > a0:
            index = ap.index[a0:a1]
            if self.index[a0] != s.expect or not (np.diff(index) == 1).all():
                return False
        if c1 > c0:
            term, index = cm.term[c0:c1], cm.index[c0:c1]
            if (int(term[0]) < st.hs_term or int(term[-1]) > st.term
                    or int(index[0]) < st.commit or not (cm.boot[c0:c1] == s.boot).all()
                    or not ((np.diff(term) >= 0).all() and (np.diff(index) >= 0).all())):
                return False
            # as c1 - c0 calls of on_commit: the last commit is the node's commit; the durable
            # term and commit were last raised by the first commit reaching their maximum
            lazy, lines = s.lazy, cm.lines
            st.hs_term, st.commit, st.commit_ev = int(term[-1]), int(index[-1]), lazy.commit
            lazy.commit_line = int(lines[c1 - 1])
            if int(term[-1]) > st.durable_term:
                st.durable_term, st.durable_term_ev = int(term[-1]), lazy.term
                lazy.term_line = int(lines[c0 + int(np.argmax(term == term[-1]))])
            if int(index[-1]) > st.durable_commit:
                st.durable_commit, st.durable_commit_ev = int(index[-1]), lazy.durable
                lazy.durable_line = int(lines[c0 + int(np.argmax(index == index[-1]))])
            s.others += c1 - c0
        if a1 > a0:
            s.expect = self.index[a1 - 1] + 1
            s.applies += a1 - a0
        last_apply = int(ap.lines[a1 - 1]) if a1 > a0 else -1
        last_commit = int(cm.lines[c1 - 1]) if c1 > c0 else -1
        self.prev_line = max(last_apply, last_commit)
        return True

    def _one_by_one(self, a0: int, a1: int, c0: int, c1: int) -> None:
        """The same stretch event by event: runs of applies between commits."""
        cm = self.commits
        c_lines = cm.lines[c0:c1].tolist()
        upto = np.searchsorted(self.applies.lines, c_lines).tolist()
        done = a0
        for j, rows in enumerate(upto):
            if rows > done:
                self._applies(done, rows)
                done = rows
            c = c0 + j
            self._commit(c_lines[j], int(cm.boot[c]), int(cm.index[c]), int(cm.term[c]))
        if a1 > done:
            self._applies(done, a1)

    def _applies(self, a: int, b: int) -> None:
        """Template applies a..b-1: only a jump in their indexes needs a look."""
        s, index, jumps = self.s, self.index, self.jumps
        if index[a] != s.expect:
            self._jump(a, s.expect)
        while self.jump_at < len(jumps) and jumps[self.jump_at] < b:
            r = jumps[self.jump_at]
            self.jump_at += 1
            if r > a:
                self.prev_line = int(self.applies.lines[r - 1])
                self._jump(r, index[r - 1] + 1)
        s.expect = index[b - 1] + 1
        s.applies += b - a
        self.prev_line = int(self.applies.lines[b - 1])

    def _jump(self, row: int, expect: int) -> None:
        s = self.s
        k = int(self.applies.lines[row])
        s.lazy.resolve(self)
        s.log.seq = self.base + int(self.starts[k])
        s.st.expect = expect
        s.st.apply_jump(self.event(k), self.index[row], self.previous())
        _mark_boot(s, s.log.seq)

    def _commit(self, k: int, boot: int, index: int, term: int) -> None:
        """A template commit: NodeState.on_commit without the dict, unless it is anything but
        the plain case (same boot, term and commit not going back)."""
        s = self.s
        st = s.st
        if boot != s.boot or term < st.hs_term or index < st.commit:
            self._other(k, self.event(k))
            return
        st.hs_term = term
        if term > st.term:
            st.expect = s.expect
            st.raise_term(term)
        lazy = s.lazy
        st.commit, st.commit_ev = index, lazy.commit
        lazy.commit_line = k
        if term > st.durable_term:
            st.durable_term, st.durable_term_ev = term, lazy.term
            lazy.term_line = k
        if index > st.durable_commit:
            st.durable_commit, st.durable_commit_ev = index, lazy.durable
            lazy.durable_line = k
        s.others += 1
        self.prev_line = k

    def _other(self, k: int, ev: Event) -> None:
        """An event parsed as a dict, through the NodeState handlers as scan_node does."""
        s = self.s
        st = s.st
        s.lazy.resolve(self)
        offset = self.base + int(self.starts[k])
        s.log.seq = offset
        st.expect = s.expect
        kind = ev["type"]
        if kind == "apply":
            self.extra.append((k, *_apply_fields(ev)))
            if ev["index"] != s.expect:
                st.apply_jump(ev, ev["index"], self.previous())
            s.expect = ev["index"] + 1
            s.applies += 1
        else:
            s.others += 1
            if kind == "commit":
                if ev["boot"] != s.boot:
                    st.implicit_boot(ev, self.previous())
                st.on_commit(ev)
            else:
                st.on_other(kind, ev, self.previous())
            s.expect = st.expect
        _mark_boot(s, offset)
        s.prev, self.prev_line = ev, -1

    def _columns(self) -> None:
        """This block's applies, template and dict ones, in line order."""
        ap = self.applies
        lines = ap.lines
        cols = (ap.index, ap.term, ap.digest, self.base + self.starts[lines])
        if self.extra:
            more = np.array(self.extra, dtype=object)
            lines = np.concatenate([lines, more[:, 0].astype(np.int64)])
            order = np.argsort(lines, kind="stable")
            cols = (np.concatenate([cols[0], more[:, 1].astype(np.int64)])[order],
                    np.concatenate([cols[1], more[:, 2].astype(np.int64)])[order],
                    np.concatenate([cols[2], more[:, 3].astype(np.uint64)])[order],
                    (self.base + self.starts[lines])[order])
        self.s.columns.append(cols)


def _mark_boot(s: _Scan, offset: int) -> None:
    if s.st.boot != s.boot:
        s.boot = s.st.boot
        s.boot_marks.append((offset, s.boot))


def _apply_fields(ev: Event) -> tuple[int, int, int]:
    """(index, term, digest) of an apply event parsed as a dict, or NotColumnar."""
    index, term, digest = ev["index"], ev["term"], ev["digest"]
    for name, value in (("index", index), ("term", term)):
        if type(value) is not int or not 0 <= value <= _INT64_MAX:
            raise NotColumnar(f"apply {name} {value!r} is not a non-negative int64")
    if type(digest) is not str or not _DIGEST.fullmatch(digest):
        raise NotColumnar(f"apply digest {digest!r} is not 16 lowercase hex digits")
    return index, term, int(digest, 16)

