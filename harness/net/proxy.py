"""Controller-owned TCP proxies, one per directed peer link (src -> dst).

`src` dials its link's listen address instead of `dst`'s peer port, and the proxy forwards
bytes both ways. Cutting a link blackholes it: bytes arriving on its connections are read and
dropped (as packets vanishing on the wire), new connections are accepted but go nowhere, and
nothing is sent, so the dialer sees silence, not a refusal. Healing closes every connection
that lived through the cut (their byte streams have holes) so the nodes reconnect cleanly.

All sockets are served by one selector thread; control calls are queued to that thread and
wait until applied, so `cut` returns only once the link is really dead.

A link may also carry a message rule (`set_rule`, see harness.net.msgfilter): its bytes are then
split into transport frames, and frames of the rule's Raft message types are dropped or held.
A held frame stalls its connection: it and every later byte of that connection are kept, in
order, and the connection is reset, so the sender reconnects and its later messages go through
on the new one (TCP orders one connection, not two). The held frames are delivered, in order,
on a fresh connection to dst at their release time (or when the rule is cleared): to the
receiver they are messages that spent that long in the network.

A link may also be degraded (`set_conditions`, see harness.net.linkcond): delay, jitter,
loss, duplication, reordering. In `message` units (raftkv) the link is split into frames as
for a rule (its open connections are reset once, when the first message condition is set) and
each Raft message meets its own fate; in `byte` units the bytes of each connection wait in a
backlog until due. Bytes dst sends back on a link's connection travel dst -> src and meet the
conditions of that link. A sender that closes its connection while messages are still on their
way does not take them back: they are delivered at their due time on a fresh connection, like
held frames (byte streams instead close once what is on its way was delivered).
Held and late messages go out on a fresh connection that starts with the hello the link's
stream began with (nodes/transport.py: a raftkv node takes frames only after one), as a
recording of the original stream would.
"""

from __future__ import annotations

import logging
import math
import random
import selectors
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.net.linkcond import Backlog, LinkConditions, Shaper, combine
from harness.net.msgfilter import (
    Action,
    FrameError,
    FrameSplitter,
    MessageRule,
    is_hello,
    strip_frame,
)
from harness.net.selector_loop import CHUNK, SelectorLoop, drained

log = logging.getLogger(__name__)

LATE_CONNECT_TIMEOUT = 1.0  # one connection attempt to deliver held frames
LATE_DELIVERY_WINDOW = 3.0  # held frames for a dst that does not listen are lost after this
LATE_RETRY = 0.05


@dataclass(eq=False)
class _Conn:
    """One accepted connection and its upstream leg."""

    link: _Link
    down: socket.socket  # from src
    up: socket.socket | None  # to dst (None while the link is cut)
    to_up: bytearray = field(default_factory=bytearray)
    to_down: bytearray = field(default_factory=bytearray)
    connected: bool = False
    tainted: bool = False  # lived through a cut
    splitter: FrameSplitter | None = None  # set while its link has a message rule or condition
    late_up: Backlog = field(default_factory=Backlog)
    late_down: Backlog = field(default_factory=Backlog)
    closing: bool = False
    hello: bytes = b""  # the transport hello that began this connection's stream, if any


@dataclass(eq=False)
class _Held:
    """Frames stalled on the network until `release_at` (monotonic; None = until released)."""

    data: bytearray
    release_at: float | None
    frames: int = 0
    in_flight: bool = False  # delayed by a link condition, not held by a rule


@dataclass(eq=False)
class _Link:
    src: str
    dst: str
    listener: socket.socket
    target: tuple[str, int]
    cut: bool = False
    conns: set[_Conn] = field(default_factory=set)
    bytes_forwarded: int = 0
    bytes_dropped: int = 0
    rule: MessageRule | None = None
    held: list[_Held] = field(default_factory=list)
    msgs_dropped: int = 0
    msgs_held: int = 0
    msgs_stripped: int = 0
    msgs_released: int = 0
    #: The transport hello the link's latest stream began with (raftkv), for fresh connections.
    hello: bytes = b""
    #: Conditions by owner (one fault each) and the shaper of their combination.
    conditions: dict[str, LinkConditions] = field(default_factory=dict)
    shaper: Shaper | None = None
    msgs_lost: int = 0
    msgs_duplicated: int = 0
    units_delayed: int = 0  # messages or chunks that waited
    units_overtaken: int = 0  # delivered after one read later than them


class ProxyHub(SelectorLoop):
    """All links of one test, served by one thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__("proxy-hub")
        self.host = host
        self._links: dict[tuple[str, str], _Link] = {}
        self._lagging: set[_Conn] = set()  # connections with a backlog
        self._start()

    # ---- control (any thread) ----

    def add_link(self, src: str, dst: str, target: tuple[str, int]) -> tuple[str, int]:
        """Create the proxy for src -> dst forwarding to `target`; returns its listen address."""
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.host, 0))
        lsock.listen(64)
        lsock.setblocking(False)
        link = _Link(src, dst, lsock, target)

        def apply() -> None:
            self._links[(src, dst)] = link
            self._sel.register(lsock, selectors.EVENT_READ, ("accept", link))

        self._call(apply)
        addr: tuple[str, int] = lsock.getsockname()[:2]
        return addr

    def address(self, src: str, dst: str) -> tuple[str, int]:
        addr: tuple[str, int] = self._links[(src, dst)].listener.getsockname()[:2]
        return addr

    def set_cut(self, links: set[tuple[str, str]]) -> None:
        """Cut exactly `links` (directed src, dst pairs); heal every other link."""
        unknown = links - set(self._links)
        if unknown:
            raise KeyError(f"no proxy for links {sorted(unknown)}")

        def apply() -> None:
            for key, link in self._links.items():
                want = key in links
                if want and not link.cut:
                    link.cut = True
                    for c in link.conns:
                        c.tainted = True
                elif not want and link.cut:
                    link.cut = False
                    for c in list(link.conns):
                        if c.tainted:
                            self._close(c)

        self._call(apply)

    def set_rule(self, src: str, dst: str, rule: MessageRule | None) -> None:
        """Filter src -> dst by `rule` (None = forward everything again and release what is
        held). Connections open when a rule is set are reset, so that splitting into frames
        starts at a frame boundary; the sender reconnects (Raft retransmits what was lost)."""
        link = self._links.get((src, dst))
        if link is None:
            raise KeyError(f"no proxy for link {src}->{dst}")

        def apply() -> None:
            was_split = _splits(link)
            link.rule = rule
            self._resplit(link, was_split)
            if rule is None:
                self._release(link, everything=True)

        self._call(apply)

    def release(self, src: str, dst: str) -> int:
        """Deliver now whatever src -> dst holds; returns the number of frames released."""
        link = self._links.get((src, dst))
        if link is None:
            raise KeyError(f"no proxy for link {src}->{dst}")
        released: list[int] = []

        def apply() -> None:
            released.append(self._release(link, everything=True))

        self._call(apply)
        return released[0]

    def held_frames(self, src: str, dst: str) -> int:
        return sum(h.frames for h in self._links[(src, dst)].held if not h.in_flight)

    def set_conditions(
        self, owner: str, conditions: Mapping[tuple[str, str], LinkConditions], seed: int = 0
    ) -> None:
        """Degrade exactly the links of `conditions` on behalf of `owner` (one fault): the
        owner's conditions on every other link are removed; other owners' stay and combine
        (harness.net.linkcond.combine). `seed` seeds each link's random draws."""
        unknown = set(conditions) - set(self._links)
        if unknown:
            raise KeyError(f"no proxy for links {sorted(unknown)}")

        def apply() -> None:
            for key, link in self._links.items():
                cond = conditions.get(key)
                if cond is not None:
                    link.conditions[owner] = cond
                elif link.conditions.pop(owner, None) is None:
                    continue
                self._reshape(link, random.Random(f"{seed}:{key[0]}->{key[1]}"))

        self._call(apply)

    def clear_conditions(self, owner: str | None = None) -> list[tuple[str, str]]:
        """Remove `owner`'s conditions (everyone's if None); returns the links that had some.
        What a cleared link still delays is delivered at once, in order."""
        cleared: list[tuple[str, str]] = []

        def apply() -> None:
            for key, link in self._links.items():
                if owner is None and link.conditions:
                    link.conditions.clear()
                elif owner is None or link.conditions.pop(owner, None) is None:
                    continue
                cleared.append(key)
                self._reshape(link, random.Random(f"{owner}:{key[0]}->{key[1]}"))

        self._call(apply)
        return sorted(cleared)

    def conditions(self) -> dict[tuple[str, str], LinkConditions]:
        """The combined conditions in effect on each degraded link."""
        return {k: link.shaper.cond for k, link in self._links.items() if link.shaper is not None}

    def cut_links(self) -> set[tuple[str, str]]:
        return {k for k, link in self._links.items() if link.cut}

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            f"{s}->{d}": {
                "conns": len(link.conns),
                "forwarded": link.bytes_forwarded,
                "dropped": link.bytes_dropped,
                "msgs_dropped": link.msgs_dropped,
                "msgs_held": link.msgs_held,
                "msgs_stripped": link.msgs_stripped,
                "msgs_released": link.msgs_released,
                "msgs_lost": link.msgs_lost,
                "msgs_duplicated": link.msgs_duplicated,
                "delayed": link.units_delayed,
                "overtaken": link.units_overtaken,
            }
            for (s, d), link in self._links.items()
        }

    def close(self) -> None:
        def close_all() -> None:
            for link in self._links.values():
                for c in list(link.conns):
                    self._close(c)
                self._sel.unregister(link.listener)
                link.listener.close()
            self._links.clear()

        self._shut_down(close_all)

    # ---- the selector thread ----

    def _select_timeout(self) -> float:
        due = [h.release_at for link in self._links.values() for h in link.held if h.release_at is not None]
        for c in self._lagging:
            due += [t for t in (c.late_up.next_due(), c.late_down.next_due()) if t is not None]
        return 1.0 if not due else max(0.0, min(1.0, min(due) - time.monotonic()))

    def _after_select(self) -> None:  # held frames and delayed bytes whose time has come
        for link in self._links.values():
            if link.held:
                self._release(link, everything=False)
        if self._lagging:
            now = time.monotonic()
            for c in list(self._lagging):
                self._deliver_due(c, now)

    # ---- link conditions (on the selector thread) ----

    def _reverse(self, link: _Link) -> _Link | None:
        return self._links.get((link.dst, link.src))

    def _reshape(self, link: _Link, rng: random.Random) -> None:
        """Apply the combination of `link`'s conditions."""
        was_split = _splits(link)
        cond = combine(link.conditions.values())
        link.shaper = None if cond is None else Shaper(cond, rng)
        self._resplit(link, was_split)
        # A cleared direction delivers what it delays now (in _after_select, in order).
        if link.shaper is None:
            self._lagging.update(c for c in link.conns if c.late_up)
            rev = self._reverse(link)
            if rev is not None:
                self._lagging.update(c for c in rev.conns if c.late_down)

    def _resplit(self, link: _Link, was_split: bool) -> None:
        """Start or stop splitting `link` into frames. Starting resets its open connections,
        so that splitting begins at a frame boundary (the sender reconnects; Raft retransmits)."""
        if _splits(link) and not was_split:
            for c in list(link.conns):
                self._close(c)
        elif was_split and not _splits(link):
            for c in link.conns:
                if c.splitter is not None:
                    partial = bytes(c.splitter.buf)  # a partial frame: let it complete unfiltered
                    c.splitter = None
                    if partial:
                        self._to_up(c, partial)
                    self._interest(c)

    def _to_up(self, c: _Conn, data: bytes) -> None:
        """Bytes src -> dst as a byte stream: now, or once due under the link's conditions."""
        self._stream(c, data, c.late_up, c.to_up, c.link.shaper, c.link)

    def _to_down(self, c: _Conn, data: bytes) -> None:
        """Bytes dst -> src: they travel the reverse link and meet its conditions."""
        rev = self._reverse(c.link)
        self._stream(c, data, c.late_down, c.to_down, None if rev is None else rev.shaper, rev or c.link)

    def _stream(
        self, c: _Conn, data: bytes, late: Backlog, buf: bytearray, shaper: Shaper | None, link: _Link
    ) -> None:
        if shaper is None and not late:
            buf += data
            return
        lag = 0.0 if shaper is None else late.stream_lag(shaper)
        if lag > 0:
            link.units_delayed += 1
        late.push(data, time.monotonic() + lag)  # behind anything still on its way
        self._lagging.add(c)

    def _forward_frame(self, c: _Conn, f: bytes) -> None:
        """A whole frame src -> dst: through the link's message conditions, if any."""
        link = c.link
        shaper = link.shaper
        if shaper is None or shaper.cond.unit != "message":
            self._to_up(c, f)
            return
        lags = shaper.copies()
        if not lags:
            link.msgs_lost += 1
            return
        if len(lags) > 1:
            link.msgs_duplicated += 1
        now = time.monotonic()
        for lag in lags:
            if lag <= 0 and not c.late_up:
                c.to_up += f  # due at once and nothing ahead of it
                continue
            if lag > 0:
                link.units_delayed += 1
            c.late_up.push(f, now + lag, shaper.ordered)
            self._lagging.add(c)

    def _deliver_due(self, c: _Conn, now: float) -> None:
        """Move what is due of c's backlogs to its send buffers (everything, for a direction
        whose conditions were cleared); a cut link drops it."""
        link = c.link
        rev = self._reverse(link)
        for late, buf, lane in ((c.late_up, c.to_up, link), (c.late_down, c.to_down, rev or link)):
            if not late:
                continue
            data, overtaken = late.pop_due(math.inf if lane.shaper is None else now)
            lane.units_overtaken += overtaken
            if link.cut:
                link.bytes_dropped += len(data)
            else:
                buf += data
        if not c.late_up and not c.late_down:
            self._lagging.discard(c)
        if c.closing and drained(c):
            self._close(c)
            return
        self._interest(c)

    def _release(self, link: _Link, everything: bool) -> int:
        """Deliver held frames whose time has come (all of them if `everything`), oldest first;
        a stall not yet due keeps back the ones after it, so the link's order is kept."""
        now = time.monotonic()
        data = bytearray()
        frames = 0
        while link.held:
            h = link.held[0]
            if not everything and (h.release_at is None or h.release_at > now):
                break
            link.held.pop(0)
            data += h.data
            frames += h.frames
        if data and link.cut:
            link.bytes_dropped += len(data)  # released into a cut link: lost like the rest
        elif data:
            link.msgs_released += frames
            # a fresh connection: the stream's hello first (a node takes it twice, not none)
            data[:0] = link.hello
            threading.Thread(
                target=_deliver_late, args=(link.src, link.dst, link.target, bytes(data)), name="proxy-late", daemon=True
            ).start()
        return frames

    def _filter(self, c: _Conn, data: bytes) -> None:
        """Split `data` from src into frames and apply the link's rule to each."""
        link = c.link
        assert c.splitter is not None
        try:
            frames = c.splitter.feed(data)
        except FrameError as e:
            log.warning("proxy %s->%s: %s; resetting the connection", link.src, link.dst, e)
            self._close(c)
            return
        stall: _Held | None = None
        for f in frames:
            if not c.hello and is_hello(f):
                c.hello = link.hello = f
            if stall is not None:  # everything after a held frame stays behind it
                stall.data += f
                stall.frames += 1
                continue
            action = Action.FORWARD if link.rule is None else link.rule.decide(f)
            if action is Action.FORWARD:
                self._forward_frame(c, f)
            elif action is Action.DROP:
                link.msgs_dropped += 1
            elif action is Action.STRIP:
                self._forward_frame(c, strip_frame(f))
                link.msgs_stripped += 1
            else:
                assert link.rule is not None
                delay = link.rule.delay
                at = None if delay is None else time.monotonic() + delay
                self._flush_up(c)
                # earlier frames that could not be written yet, or are still on their way,
                # stay ahead of the held one
                self._keep_in_flight(c)
                stall = _Held(bytearray(c.to_up) + f, at, 1)
                c.to_up.clear()
                link.msgs_held += 1
        if stall is not None:
            c.splitter.buf.clear()  # a trailing partial frame dies with the reset connection
            link.held.append(stall)
            self._close(c)

    def _flush_up(self, c: _Conn) -> None:
        """Write what can be written now of c.to_up (before the connection is reset)."""
        if c.up is None or not c.connected or not c.to_up:
            return
        try:
            n = c.up.send(c.to_up)
        except OSError:
            return
        del c.to_up[:n]
        c.link.bytes_forwarded += n

    def _accept(self, link: _Link) -> None:
        try:
            down, _ = link.listener.accept()
        except (BlockingIOError, OSError):
            return
        down.setblocking(False)
        down.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Conn(link, down, None, tainted=link.cut, splitter=FrameSplitter() if _splits(link) else None)
        link.conns.add(c)
        if not link.cut:
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.setblocking(False)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.up = up
            err = up.connect_ex(link.target)
            if err not in (0, 115):  # 115 = EINPROGRESS
                self._close(c)
                return
            self._sel.register(up, selectors.EVENT_WRITE, ("conn", c))
        self._sel.register(down, selectors.EVENT_READ, ("conn", c))

    def _service(self, c: _Conn, sock: socket.socket, mask: int) -> None:
        link = c.link
        if sock is c.up and not c.connected and mask & selectors.EVENT_WRITE:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                self._close(c)  # dst is down: the dialer sees its connection closed
                return
            c.connected = True
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(CHUNK)
            except BlockingIOError:
                data = None
            except OSError:
                self._close(c)
                return
            if data == b"":
                if c.splitter is None and c.up is not None and not drained(c) and not link.cut:
                    c.closing = True  # a byte stream: deliver what is on its way first
                    self._interest(c)
                else:
                    self._close(c)
                return
            if data:
                if link.cut:
                    link.bytes_dropped += len(data)  # blackholed
                elif sock is c.down and c.splitter is not None:
                    self._filter(c, data)
                    if c.down.fileno() < 0:
                        return  # the rule stalled and reset this connection
                elif sock is c.down:
                    self._to_up(c, data)
                else:
                    self._to_down(c, data)
        if mask & selectors.EVENT_WRITE and not link.cut:
            out, buf = (c.up, c.to_up) if sock is c.up else (c.down, c.to_down)
            if buf and out is not None and (out is c.down or c.connected):
                try:
                    n = out.send(buf)
                except BlockingIOError:
                    n = 0
                except OSError:
                    self._close(c)
                    return
                del buf[:n]
                link.bytes_forwarded += n
        if link.cut:
            c.to_up.clear()
            c.to_down.clear()
        if c.closing and drained(c):
            self._close(c)
            return
        self._interest(c)

    def _keep_in_flight(self, c: _Conn) -> None:
        """Whole frames c still delays outlive the connection: they are delivered at their
        due time on a connection of their own, behind anything the link holds."""
        if c.splitter is None or not c.late_up or c.link.cut:
            return
        items, overtaken = c.late_up.take_all()
        c.link.units_overtaken += overtaken
        data = bytearray(b"".join(d for _, d in items))
        # one delivery, at the latest due time: none of them arrives earlier than drawn
        c.link.held.append(_Held(data, max(due for due, _ in items), len(items), in_flight=True))

    def _close(self, c: _Conn) -> None:
        self._keep_in_flight(c)
        self._lagging.discard(c)
        self._close_sockets(c)
        c.link.conns.discard(c)


def _splits(link: _Link) -> bool:
    """The link is read as transport frames: it has a message rule or message conditions."""
    return link.rule is not None or (link.shaper is not None and link.shaper.cond.unit == "message")


def _deliver_late(src: str, dst: str, target: tuple[str, int], data: bytes) -> None:
    """Write held frames to dst on a connection of their own (the original one was reset).
    A dst that is restarting gets LATE_DELIVERY_WINDOW seconds to listen again; after that
    the held messages are lost, as on a real network."""
    deadline = time.monotonic() + LATE_DELIVERY_WINDOW
    while True:
        try:
            with socket.create_connection(target, timeout=LATE_CONNECT_TIMEOUT) as s:
                s.sendall(data)
            log.info("proxy %s->%s: delivered %d held bytes", src, dst, len(data))
            return
        except OSError as e:
            if time.monotonic() >= deadline:
                log.info("proxy %s->%s: held messages lost (%s)", src, dst, e)
                return
        time.sleep(LATE_RETRY)
