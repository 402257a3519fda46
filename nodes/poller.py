"""One thread's readiness loop: sockets it reads itself, plus a wake-up for other threads.

The node loop waits here instead of on a queue, so a peer frame or a client request is read,
decoded and stepped by the thread that owns the RawNode, with no hand-off to a reader thread
in between. On 2 shared cores every hand-off is a wake-up that waits for a CPU (and for the
GIL); the profile of a 16-client write load showed those waits, not Raft work, dominating
latency (docs/benchmarks.md, raftkv).

Only the owning thread may register, unregister or wait; any thread may call wake().
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

Handler = Callable[[], None]


def accept_pending(server: socket.socket, what: str) -> Iterator[socket.socket]:
    """Every connection waiting on a non-blocking listener, made non-blocking with Nagle off
    (a request or a Raft message must not wait for the next one to fill a segment)."""
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return
        except OSError as e:
            log.warning("%s: accept: %s", what, e)
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield conn


@dataclass
class _Reg:
    on_read: Handler
    on_write: Handler | None
    active: bool = True  # False once unregistered: a later ready event of the batch is skipped


class Poller:
    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._woken = False  # a wake byte is in flight: later wake() calls need no syscall
        self._lock = threading.Lock()
        self._regs: dict[int, _Reg] = {}
        self._sel.register(self._wake_r, selectors.EVENT_READ, _Reg(self._drain_wake, None))
        self.closed = False

    def register(self, sock: socket.socket, on_read: Handler, on_write: Handler | None = None) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on_write else 0)
        reg = _Reg(on_read, on_write)
        self._sel.register(sock, events, reg)
        self._regs[sock.fileno()] = reg

    def want_write(self, sock: socket.socket, on_write: Handler | None) -> None:
        """Start (a handler) or stop (None) watching sock for writability."""
        reg = self._regs[sock.fileno()]
        reg.on_write = on_write
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on_write else 0)
        self._sel.modify(sock, events, reg)

    def unregister(self, sock: socket.socket) -> None:
        """Call before closing sock."""
        reg = self._regs.pop(sock.fileno(), None)
        if reg is None:
            return
        reg.active = False
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def wake(self) -> None:
        with self._lock:
            if self._woken or self.closed:
                return
            self._woken = True
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # the buffer is full (a wake-up is pending anyway) or closed at shutdown

    def _drain_wake(self) -> None:
        with self._lock:
            self._woken = False
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass  # BlockingIOError: drained

    def wait(self, timeout: float | None) -> int:
        """Run the handlers of every ready socket once; returns how many were ready."""
        ready = self._sel.select(timeout)
        for key, mask in ready:
            reg: _Reg = key.data
            if mask & selectors.EVENT_WRITE and reg.active and reg.on_write is not None:
                reg.on_write()
            if mask & selectors.EVENT_READ and reg.active:
                reg.on_read()
        return len(ready)

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._regs.clear()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
