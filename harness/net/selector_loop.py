"""One selector thread that splices TCP connections, steered by control calls from other
threads: the machinery shared by the raftkv link proxies (`harness.net.proxy`) and the etcd
peer proxies (`harness.net.etcd_proxy`). Subclasses accept connections and service their
sockets; this class runs the thread, applies control calls on it, and keeps each
connection's two sockets registered for the events its buffers need (reading stops while
the other side has BUF_LIMIT bytes unsent or not yet due: backpressure instead of unbounded
memory). Bytes a link condition delays wait in the connection's backlogs
(`harness.net.linkcond.Backlog`) until they are due; a connection whose sender closed while
some were still on their way is `closing`: nothing more is read, and it closes once drained.
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any, Protocol

from harness.net.linkcond import Backlog

log = logging.getLogger(__name__)

BUF_LIMIT = 1 << 20  # stop reading a side while the other side has this much unsent
CHUNK = 65536


class Spliced(Protocol):
    """A proxied connection: `down` from the dialer, `up` to the destination."""

    down: socket.socket
    up: socket.socket | None
    to_up: bytearray
    to_down: bytearray
    connected: bool
    late_up: Backlog  # bytes for `up` that a link condition delays
    late_down: Backlog
    closing: bool  # the sender closed: deliver what is on its way, then close


def drained(c: Spliced) -> bool:
    """Nothing of `c` is left to deliver in either direction."""
    return not (c.to_up or c.to_down or c.late_up or c.late_down)


class SelectorLoop:
    """The selector thread. Selector keys carry ("wake" | "accept" | "conn", object)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._sel = selectors.DefaultSelector()
        self._calls: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _start(self) -> None:
        self._thread.start()

    # ---- control (any thread) ----

    def _call(self, fn: Callable[[], None], timeout: float = 5.0) -> None:
        """Run fn on the selector thread and wait for it (at once if the thread is gone)."""
        if not self._thread.is_alive():
            fn()
            return
        done = threading.Event()
        self._calls.put((fn, done))
        self._wake_w.send(b"x")
        if not done.wait(timeout):
            raise TimeoutError(f"{self.name} did not apply a control call within {timeout:.0f} s")

    def _shut_down(self, close_all: Callable[[], None]) -> None:
        """Run close_all on the thread, stop it, and release the selector."""

        def apply() -> None:
            close_all()
            self._stop = True

        if self._thread.is_alive():
            try:
                self._call(apply)
            except TimeoutError:
                log.warning("%s did not stop in time", self.name)
            self._thread.join(5)
        else:
            close_all()
        self._wake_r.close()
        self._wake_w.close()
        self._sel.close()

    # ---- the selector thread ----

    def _loop(self) -> None:
        while not self._stop:
            for key, mask in self._sel.select(timeout=self._select_timeout()):
                kind, obj = key.data
                try:
                    if kind == "wake":
                        self._drain_calls()
                    elif kind == "accept":
                        self._accept(obj)
                    else:
                        self._service(obj, key.fileobj, mask)  # type: ignore[arg-type]
                except Exception:  # one bad socket must not stop the whole network
                    log.exception("%s: error on %s", self.name, kind)
                if self._stop:
                    break
            if not self._stop:
                self._after_select()

    def _select_timeout(self) -> float:
        return 1.0

    def _after_select(self) -> None:
        """Called after every select() round (timers of the subclass)."""

    def _accept(self, obj: Any) -> None:
        raise NotImplementedError

    def _service(self, c: Any, sock: socket.socket, mask: int) -> None:
        raise NotImplementedError

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

    def _set_events(self, sock: socket.socket, events: int, c: Spliced) -> None:
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

    def _interest(self, c: Spliced) -> None:
        """Re-register both sockets with the events they currently need."""
        if c.down.fileno() < 0:
            return
        ev_down = 0
        if not c.closing and len(c.to_up) + c.late_up.nbytes < BUF_LIMIT:
            ev_down |= selectors.EVENT_READ
        if c.to_down:
            ev_down |= selectors.EVENT_WRITE
        self._set_events(c.down, ev_down, c)
        if c.up is not None and c.up.fileno() >= 0:
            ev_up = 0
            if not c.connected or c.to_up:
                ev_up |= selectors.EVENT_WRITE
            if c.connected and not c.closing and len(c.to_down) + c.late_down.nbytes < BUF_LIMIT:
                ev_up |= selectors.EVENT_READ
            self._set_events(c.up, ev_up, c)

    def _close_sockets(self, c: Spliced) -> None:
        for s in (c.down, c.up):
            if s is None or s.fileno() < 0:
                continue
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
