"""Link conditions: how one directed peer link (src -> dst) is degraded, and the queue that
makes the delays real inside the controller's proxies.

A proxy sees what the application wrote, not packets. What each condition can honestly mean
therefore depends on the unit the link is degraded in (`LinkConditions.unit`):

- `message` (raftkv, whose proxies split the stream into transport frames): one Raft message.
  Messages are delayed, dropped, duplicated and reordered whole, as a datagram transport would
  treat them; the receiver gets well-formed frames and Raft's own retransmission must cope.
- `byte` (etcd's rafthttp streams, any other system over TCP): a chunk of the byte stream as
  the proxy read it. It can only be delayed. TCP retransmits what a real link loses and
  discards duplicate segments, so dropping or repeating bytes would not be loss or duplication
  as the application ever sees it, only a corrupt stream; those need packets (`packet`).
- `packet` (the netns provider): the kernel drops IP packets at random (iptables' statistic
  match); TCP's retransmissions, back-offs and resets are then real.

Parameters, for the units that have them:
- `delay_ms` +- `jitter_ms`: each unit is due `delay + uniform(-jitter, +jitter)` ms (at least
  0) after the proxy read it. Order is kept: a unit is never due before the one read before
  it on the same connection, as TCP delivers (jitter stretches gaps, it never reorders).
- `loss`, `duplicate` (messages): each message is dropped, or delivered twice, with this
  probability; a copy follows its original.
- `reorder`: what reordering can mean for the unit. Messages: a fraction `reorder` of them go
  at once and the others wait `delay +- jitter` each, every message delivered when it is due,
  so later messages overtake earlier ones (netem's `reorder`). raftkv opens one connection
  per directed link (nodes/transport.py: one outgoing connection per peer, inbound ones only
  read), so there is nothing to reorder *across* connections for it; this reorders the Raft
  messages of one link. Byte streams: across connections. Each connection (each direction)
  draws one lag when it first carries data under the condition: none with probability
  `reorder`, else `delay +- jitter`; its bytes keep their order, but what an undelayed
  connection carries overtakes what was written earlier on a lagging one (etcd sends appends,
  other messages and pipeline posts on separate connections between the same two members).

Several conditions on one link (overlapping faults) combine as links in series: delays and
jitters add, loss and duplication compound, reorder takes the largest.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

UNITS = ("message", "byte", "packet")

#: Why a proxy cannot lose or duplicate data of a byte stream (the local provider's refusal).
BYTE_STREAM_LOSS = "TCP retransmits lost segments and discards duplicates; dropped or repeated bytes only corrupt a stream"


@dataclass(frozen=True)
class LinkConditions:
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    unit: str = "message"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"linkcond: unit must be one of {', '.join(UNITS)}, got {self.unit!r}")
        for name in ("delay_ms", "jitter_ms"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"linkcond: {name} must be a finite number >= 0, got {v}")
        for name in ("loss", "duplicate", "reorder"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"linkcond: {name} must be a probability in [0, 1], got {v}")
        if self.unit == "byte" and (self.loss or self.duplicate):
            raise ValueError(f"linkcond: a byte stream cannot lose or duplicate data ({BYTE_STREAM_LOSS})")

    def value(self) -> dict[str, Any]:
        """The parameters in effect (non-zero ones) and the unit, as the history records them."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "unit"}
        out = {k: v for k, v in out.items() if v}
        out["unit"] = self.unit
        return out


def combine(conditions: Iterable[LinkConditions]) -> LinkConditions | None:
    """The conditions of links in series (None for none); all must be in the same unit."""
    conds = list(conditions)
    if not conds:
        return None
    units = {c.unit for c in conds}
    if len(units) != 1:
        raise ValueError(f"linkcond: cannot combine conditions in units {sorted(units)}")
    keep_loss = math.prod(1.0 - c.loss for c in conds)
    keep_dup = math.prod(1.0 - c.duplicate for c in conds)
    return LinkConditions(
        delay_ms=sum(c.delay_ms for c in conds),
        jitter_ms=sum(c.jitter_ms for c in conds),
        loss=1.0 - keep_loss,
        duplicate=1.0 - keep_dup,
        reorder=max(c.reorder for c in conds),
        unit=units.pop(),
    )


class Shaper:
    """Draws, for one directed link under `cond`, when each unit is due and whether it is lost
    or duplicated. Used on the proxy's selector thread only."""

    def __init__(self, cond: LinkConditions, rng: random.Random) -> None:
        self.cond = cond
        self.rng = rng
        #: Units of one connection keep their order (all but reordered messages).
        self.ordered = not (cond.unit == "message" and cond.reorder > 0)

    def lag(self) -> float:
        """One draw of delay +- jitter, in seconds."""
        c = self.cond
        jitter = self.rng.uniform(-c.jitter_ms, c.jitter_ms) if c.jitter_ms else 0.0
        return max(0.0, c.delay_ms + jitter) / 1000.0

    def copies(self) -> list[float]:
        """A message's fate: the lag of each copy delivered ([] = lost, two = duplicated)."""
        c = self.cond
        if c.loss and self.rng.random() < c.loss:
            return []
        n = 2 if c.duplicate and self.rng.random() < c.duplicate else 1
        if self.ordered:
            lag = self.lag()
            return [lag] * n
        return [0.0 if self.rng.random() < c.reorder else self.lag() for _ in range(n)]

    def connection_lag(self) -> float:
        """A byte stream's lag under reorder: none for a fraction `reorder` of connections."""
        return 0.0 if self.rng.random() < self.cond.reorder else self.lag()


class Backlog:
    """What one direction of one proxied connection has read but not yet delivered, each unit
    with the monotonic time it is due. Units pushed `ordered` are never due before anything
    pushed earlier; the others may overtake."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0  # order of reading
        self._latest = 0.0  # the latest due time pushed
        self._delivered_seq = -1  # the highest read-order number delivered so far
        self.nbytes = 0
        #: (shaper, lag) of a byte stream under reorder: one lag per connection and shaper.
        self._lag: tuple[Shaper, float] | None = None

    def __bool__(self) -> bool:
        return bool(self._heap)

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, data: bytes, due: float, ordered: bool = True) -> None:
        if ordered:
            due = max(due, self._latest)
        self._latest = max(self._latest, due)
        heapq.heappush(self._heap, (due, self._seq, data))
        self._seq += 1
        self.nbytes += len(data)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> tuple[bytes, int]:
        """Everything due by `now`, in due order, and how many of those units were overtaken
        (delivered after a unit read later than them)."""
        out = bytearray()
        overtaken = 0
        while self._heap and self._heap[0][0] <= now:
            _, data, late = self._pop()
            out += data
            overtaken += late
        return bytes(out), overtaken

    def take_all(self) -> tuple[list[tuple[float, bytes]], int]:
        """Empty the backlog: every unit with its due time, in due order, and how many of them
        were overtaken."""
        items = []
        overtaken = 0
        while self._heap:
            due, data, late = self._pop()
            items.append((due, data))
            overtaken += late
        return items, overtaken

    def _pop(self) -> tuple[float, bytes, bool]:
        due, seq, data = heapq.heappop(self._heap)
        overtaken = seq < self._delivered_seq
        self._delivered_seq = max(self._delivered_seq, seq)
        self.nbytes -= len(data)
        return due, data, overtaken

    def stream_lag(self, shaper: Shaper) -> float:
        """The lag of the next chunk of a byte stream: drawn per chunk, or under reorder once
        per connection and shaper."""
        if shaper.cond.reorder <= 0:
            return shaper.lag()
        if self._lag is None or self._lag[0] is not shaper:
            self._lag = (shaper, shaper.connection_lag())
        return self._lag[1]
