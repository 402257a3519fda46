"""One thread's readiness loop: sockets it reads itself, plus a wake-up for other threads.

The node loop waits here instead of on a queue, so a peer frame or a client request is read,
decoded and stepped by the thread that owns the RawNode, with no hand-off to a reader thread
in between. On 2 shared cores every hand-off is a wake-up that waits for a CPU (and for the
GIL); the profile of a 16-client write load showed those waits, not Raft work, dominating
latency (docs/benchmarks.md, raftkv).

Only the owning thread may register, unregister or wait; any thread may call wake().
"""

from __future__ import annotations

import errno
import logging
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from nodes.ratelog import Throttled

log = logging.getLogger(__name__)

Handler = Callable[[], None]

# accept() failing for want of descriptors or memory: retrying at once fails again, and the
# listener stays readable, so the loop would spin (issue 20: 440,000 log lines in 6 s)
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_BACKOFF_MIN = 0.05
ACCEPT_BACKOFF_MAX = 1.0
# descriptors kept free for the node's own files (a new WAL segment, a snapshot, fsyncs of
# directories): connections that would eat into them are closed at once
FD_RESERVE = 32


def fd_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


class Acceptor:
    """Accepts every connection waiting on a non-blocking listener, made non-blocking with
    Nagle off (a request or a Raft message must not wait for the next one to fill a segment),
    and hands it to `on_conn`. Out of descriptors, it sheds: a connection whose descriptor is
    within FD_RESERVE of the limit is closed at once, and an accept() failing with EMFILE (or
    ENFILE, ENOBUFS, ENOMEM) pauses the listener with exponential back-off. Either way one
    warning per few seconds, and the open connections are served as before."""

    def __init__(self, what: str, on_conn: Callable[[socket.socket], None]) -> None:
        self.what = what
        self.on_conn = on_conn
        self.backoff = 0.0
        self.limit = fd_limit()
        self.throttle = Throttled(log)

    def accept(self, server: socket.socket, pause: Callable[[float], None]) -> None:
        while True:
            try:
                conn, _ = server.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in RESOURCE_ERRNOS:
                    self.backoff = min(max(2 * self.backoff, ACCEPT_BACKOFF_MIN), ACCEPT_BACKOFF_MAX)
                    self.throttle.warning(
                        "accept", "%s: accept: %s; not accepting for %.2f s", self.what, e.strerror, self.backoff
                    )
                    pause(self.backoff)
                    return
                if e.errno == errno.ECONNABORTED:
                    continue  # reset before we took it
                self.throttle.warning("accept-error", "%s: accept: %s", self.what, e)
                return
            self.backoff = 0.0
            if self.limit is not None and conn.fileno() >= self.limit - FD_RESERVE:
                self.throttle.warning(
                    "shed", "%s: nearly out of file descriptors (limit %d): refusing new connections",
                    self.what, self.limit,
                )
                conn.close()
                continue
            try:
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                conn.close()
                continue
            self.on_conn(conn)


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
        self._paused: dict[int, tuple[float, socket.socket, int, _Reg]] = {}  # fd -> resume at
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
        if self._paused.pop(sock.fileno(), None) is not None:
            return
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def register_listener(self, server: socket.socket, acceptor: Acceptor) -> None:
        """Serve a listening socket with an Acceptor (which may pause it)."""
        self.register(server, lambda: acceptor.accept(server, lambda t: self.pause(server, t)))

    def pause(self, sock: socket.socket, seconds: float) -> None:
        """Stop watching sock for `seconds` (wait() resumes it on time)."""
        fd = sock.fileno()
        reg = self._regs.get(fd)
        if reg is None or fd in self._paused:
            return
        events = self._sel.get_key(sock).events
        self._sel.unregister(sock)
        self._paused[fd] = (time.monotonic() + seconds, sock, events, reg)

    def _resume_due(self) -> None:
        now = time.monotonic()
        for fd, (at, sock, events, reg) in list(self._paused.items()):
            if at <= now:
                del self._paused[fd]
                self._sel.register(sock, events, reg)

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
        if self._paused:
            until = min(at for at, _, _, _ in self._paused.values()) - time.monotonic()
            timeout = max(0.0, until if timeout is None else min(timeout, until))
        ready = self._sel.select(timeout)
        for key, mask in ready:
            reg: _Reg = key.data
            if mask & selectors.EVENT_WRITE and reg.active and reg.on_write is not None:
                reg.on_write()
            if mask & selectors.EVENT_READ and reg.active:
                reg.on_read()
        if self._paused:
            self._resume_due()
        return len(ready)

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._regs.clear()
        self._paused.clear()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
