"""Pending ReadIndex requests waiting for a quorum heartbeat round (ReadOnlyOption.SAFE)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import Message, ReadOnlyOption


@dataclass(slots=True)
class ReadIndexStatus:
    req: Message
    index: int  # the leader's commit index when the request arrived
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    __slots__ = ("option", "pending", "queue")

    def __init__(self, option: ReadOnlyOption) -> None:
        self.option = option
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []  # request contexts in arrival order

    def add_request(self, index: int, m: Message) -> None:
        ctx = m.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(m, index)
        self.queue.append(ctx)

    def recv_ack(self, node: int, ctx: bytes) -> dict[int, bool] | None:
        """Record a heartbeat ack for ctx; returns the acks so far (None if unknown ctx)."""
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks.add(node)
        return {n: True for n in rs.acks}

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Pop every request up to and including ctx (a later ack confirms earlier reads)."""
        if ctx not in self.pending:
            return []
        upto = self.queue.index(ctx) + 1
        out = [self.pending.pop(c) for c in self.queue[:upto]]
        del self.queue[:upto]
        return out

    def last_pending_request_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
