"""Controller-owned TCP proxies, one per directed peer link (src -> dst).

`src` dials its link's listen address instead of `dst`'s peer port, and the proxy forwards
bytes both ways. Cutting a link blackholes it: bytes arriving on its connections are read and
dropped (as packets vanishing on the wire), new connections are accepted but go nowhere, and
nothing is sent, so the dialer sees silence, not a refusal. Healing closes every connection
that lived through the cut (their byte streams have holes) so the nodes reconnect cleanly.

All sockets are served by one selector thread; control calls are queued to that thread and
wait until applied, so `cut` returns only once the link is really dead.
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BUF_LIMIT = 1 << 20  # stop reading a side while the other side has this much unsent
CHUNK = 65536


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


class ProxyHub:
    """All links of one test, served by one thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._sel = selectors.DefaultSelector()
        self._links: dict[tuple[str, str], _Link] = {}
        self._calls: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="proxy-hub", daemon=True)
        self._thread.start()

    # ---- control (any thread) ----

    def _call(self, fn: Callable[[], None], timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            fn()
            return
        done = threading.Event()
        self._calls.put((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(timeout):
            raise TimeoutError("proxy hub did not apply a control call within 5 s")

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

    def cut_links(self) -> set[tuple[str, str]]:
        return {k for k, link in self._links.items() if link.cut}

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            f"{s}->{d}": {"conns": len(link.conns), "forwarded": link.bytes_forwarded, "dropped": link.bytes_dropped}
            for (s, d), link in self._links.items()
        }

    def close(self) -> None:
        def apply() -> None:
            for link in self._links.values():
                for c in list(link.conns):
                    self._close(c)
                self._sel.unregister(link.listener)
                link.listener.close()
            self._links.clear()
            self._stop = True

        if self._thread.is_alive():
            try:
                self._call(apply)
            except TimeoutError:
                log.warning("proxy hub did not stop in time")
            self._thread.join(5)
        self._wake_r.close()
        self._wake_w.close()
        self._sel.close()

    # ---- the selector thread ----

    def _loop(self) -> None:
        while not self._stop:
            for key, mask in self._sel.select(timeout=1.0):
                kind, obj = key.data
                try:
                    if kind == "wake":
                        self._drain_calls()
                    elif kind == "accept":
                        self._accept(obj)
                    else:
                        self._service(obj, key.fileobj, mask)  # type: ignore[arg-type]
                except Exception:  # one bad socket must not stop the whole network
                    log.exception("proxy: error on %s", kind)
                if self._stop:
                    break

    def _drain_calls(self) -> None:
        try:
            self._wake_r.recv(4096)
        except BlockingIOError:
            pass
        while True:
            try:
                fn, done = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            finally:
                done.set()

    def _accept(self, link: _Link) -> None:
        try:
            down, _ = link.listener.accept()
        except (BlockingIOError, OSError):
            return
        down.setblocking(False)
        down.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Conn(link, down, None, tainted=link.cut)
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

    def _set_events(self, sock: socket.socket, events: int, c: _Conn) -> None:
        """(Re)register `sock` for `events`; none at all = unregistered (backpressure)."""
        try:
            registered = self._sel.get_key(sock) is not None
        except KeyError:
            registered = False
        if events and registered:
            self._sel.modify(sock, events, ("conn", c))
        elif events:
            self._sel.register(sock, events, ("conn", c))
        elif registered:
            self._sel.unregister(sock)

    def _interest(self, c: _Conn) -> None:
        """Re-register both sockets with the events they currently need."""
        if c.down.fileno() < 0:
            return
        ev_down = 0
        if len(c.to_up) < BUF_LIMIT:
            ev_down |= selectors.EVENT_READ
        if c.to_down:
            ev_down |= selectors.EVENT_WRITE
        self._set_events(c.down, ev_down, c)
        if c.up is not None and c.up.fileno() >= 0:
            ev_up = 0
            if not c.connected or c.to_up:
                ev_up |= selectors.EVENT_WRITE
            if c.connected and len(c.to_down) < BUF_LIMIT:
                ev_up |= selectors.EVENT_READ
            self._set_events(c.up, ev_up, c)

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
        for s in (c.down, c.up):
            if s is None or s.fileno() < 0:
                continue
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        c.link.conns.discard(c)
