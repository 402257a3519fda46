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
receiver they are messages that spent that long in the network. That connection starts with
the hello its original one began with (nodes/transport.py: a raftkv node takes frames only
after one), as a recording of the original stream would.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from harness.net.msgfilter import (
    Action,
    FrameError,
    FrameSplitter,
    MessageRule,
    is_hello,
    strip_frame,
)
from harness.net.selector_loop import CHUNK, SelectorLoop

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
    splitter: FrameSplitter | None = None  # set while its link has a message rule
    hello: bytes = b""  # the transport hello that began this connection's stream, if any


@dataclass(eq=False)
class _Held:
    """Frames stalled on the network until `release_at` (monotonic; None = until released)."""

    data: bytearray
    release_at: float | None
    frames: int = 0


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


class ProxyHub(SelectorLoop):
    """All links of one test, served by one thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__("proxy-hub")
        self.host = host
        self._links: dict[tuple[str, str], _Link] = {}
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
            had = link.rule
            link.rule = rule
            if rule is not None and had is None:
                for c in list(link.conns):
                    self._close(c)
            elif rule is None:
                for c in link.conns:
                    if c.splitter is not None:
                        c.to_up += c.splitter.buf  # a partial frame: let it complete unfiltered
                        c.splitter = None
                        self._interest(c)
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
        return sum(h.frames for h in self._links[(src, dst)].held)

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
        return 1.0 if not due else max(0.0, min(1.0, min(due) - time.monotonic()))

    def _after_select(self) -> None:  # held frames whose release time has come
        for link in self._links.values():
            if link.held:
                self._release(link, everything=False)

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
            threading.Thread(
                target=_deliver_late, args=(link.src, link.dst, link.target, bytes(data)), name="proxy-late", daemon=True
            ).start()
        return frames

    def _filter(self, c: _Conn, data: bytes) -> None:
        """Split `data` from src into frames and apply the link's rule to each."""
        link = c.link
        assert c.splitter is not None and link.rule is not None
        try:
            frames = c.splitter.feed(data)
        except FrameError as e:
            log.warning("proxy %s->%s: %s; resetting the connection", link.src, link.dst, e)
            self._close(c)
            return
        stall: _Held | None = None
        for f in frames:
            if not c.hello and is_hello(f):
                c.hello = f
            if stall is not None:  # everything after a held frame stays behind it
                stall.data += f
                stall.frames += 1
                continue
            action = link.rule.decide(f)
            if action is Action.FORWARD:
                c.to_up += f
            elif action is Action.DROP:
                link.msgs_dropped += 1
            elif action is Action.STRIP:
                c.to_up += strip_frame(f)
                link.msgs_stripped += 1
            else:
                delay = link.rule.delay
                at = None if delay is None else time.monotonic() + delay
                self._flush_up(c)
                # earlier frames that could not be written yet stay ahead of the held one,
                # and the stream's hello ahead of them (a node takes it twice, not none)
                stall = _Held(bytearray(c.hello) + c.to_up + f, at, 1)
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
        c = _Conn(link, down, None, tainted=link.cut, splitter=FrameSplitter() if link.rule is not None else None)
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
                    c.to_up += data
                else:
                    c.to_down += data
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
        self._interest(c)

    def _close(self, c: _Conn) -> None:
        self._close_sockets(c)
        c.link.conns.discard(c)


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
