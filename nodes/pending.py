"""Client requests waiting inside the node for an outcome (owned by the node loop thread).

Writes wait for their entry to be applied (matched by request id); reads wait for a ReadIndex
and then for the state machine to reach it; conf changes wait for their entry. Whatever is
still waiting at its deadline is answered: a write with ``info`` (it may still commit), a read
with ``fail`` (a read has no effect, so one that timed out did not happen).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from nodes.protocol import Reply, Request


@dataclass
class WriteWait:
    req: Request
    future: Future[Reply]
    deadline: float


@dataclass
class ReadWait:
    key: str
    future: Future[Reply]
    deadline: float
    index: int = -1  # read index once known; -1 = waiting for its ReadState


@dataclass
class ConfWait:
    future: Future[Any]
    deadline: float


def _answer(fut: Future[Any], reply: Reply) -> None:
    if not fut.done():
        fut.set_result(reply)


@dataclass
class Pending:
    writes: dict[str, WriteWait] = field(default_factory=dict)
    reads_batch: list[ReadWait] = field(default_factory=list)  # not yet given to read_index
    reads_by_ctx: dict[bytes, list[ReadWait]] = field(default_factory=dict)
    reads_ready: list[ReadWait] = field(default_factory=list)  # index known, awaiting apply
    confs: dict[str, ConfWait] = field(default_factory=dict)

    def take_read_batch(self, ctx: bytes) -> bool:
        """File the reads gathered so far under one ReadIndex context; False if none."""
        if not self.reads_batch:
            return False
        self.reads_by_ctx[ctx] = self.reads_batch
        self.reads_batch = []
        return True

    def read_state(self, ctx: bytes, index: int) -> None:
        reads = self.reads_by_ctx.pop(ctx, None)
        if reads:
            for r in reads:
                r.index = index
            self.reads_ready.extend(reads)

    def serve_reads(self, applied: int, get: Callable[[str], Any]) -> None:
        if not self.reads_ready:
            return
        waiting = []
        for r in self.reads_ready:
            if r.index <= applied:
                _answer(r.future, Reply("ok", get(r.key)))
            else:
                waiting.append(r)
        self.reads_ready = waiting

    def write_applied(self, rid: str, reply: Reply) -> None:
        w = self.writes.pop(rid, None)
        if w is not None:
            _answer(w.future, reply)

    def conf_applied(self, rid: str, result: Any) -> None:
        c = self.confs.pop(rid, None)
        if c is not None and not c.future.done():
            c.future.set_result(result)

    def expire(self, now: float, leader: str | None) -> None:
        for rid in [rid for rid, w in self.writes.items() if w.deadline <= now]:
            _answer(self.writes.pop(rid).future, Reply("info", error="timeout", leader=leader))
        for ctx in [c for c, rs in self.reads_by_ctx.items() if rs[0].deadline <= now]:
            for r in self.reads_by_ctx.pop(ctx):
                _answer(r.future, Reply("fail", error="timeout", leader=leader))
        keep = []
        for r in self.reads_ready:
            if r.deadline <= now:
                _answer(r.future, Reply("fail", error="timeout", leader=leader))
            else:
                keep.append(r)
        self.reads_ready = keep
        for rid in [rid for rid, c in self.confs.items() if c.deadline <= now]:
            c = self.confs.pop(rid)
            if not c.future.done():
                c.future.set_exception(TimeoutError("conf change not applied in time"))
