"""Peer transport: length-prefixed frames over TCP, one outgoing connection per peer.

A frame is ``length u32 | crc32 u32 | payload`` (big-endian); a bad length or checksum (a
proxy that dropped bytes mid-stream) closes the connection, and the sender reconnects.

Inbound connections are accepted and read by the thread that runs the Poller (the node loop
itself, so a frame is decoded and stepped without a thread hand-off; standalone, the
transport runs its own poller thread); every frame goes to ``on_frame``.

Outbound, the caller writes a frame straight to the peer's non-blocking socket when that
link is connected and idle. Everything else -- the first connect, reconnects with
exponential backoff, a socket buffer that is full, snapshots -- goes through the peer's
bounded queue and sender thread, which batches whatever is queued into one write and reports
failures (unreachable peer, failed snapshot) through callbacks, which the node turns into
Raft's report_unreachable / report_snapshot. Messages that cannot be sent are dropped: Raft
retransmits.
"""

from __future__ import annotations

import logging
import select
import socket
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nodes.fdwait import FdEvent, join_within
from nodes.poller import Poller, accept_pending
from nodes.steadyclock import SteadyClock

log = logging.getLogger(__name__)

FRAME = struct.Struct(">II")  # payload length, crc32 of the payload
MAX_FRAME = 64 << 20
QUEUE_SIZE = 4096
MAX_BATCH = 512
CONNECT_TIMEOUT = 1.0
SEND_TIMEOUT = 3.0
BACKOFF_MIN = 0.02
BACKOFF_MAX = 0.5
RECV_BYTES = 1 << 18


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class Outgoing:
    wire: bytes  # framed bytes
    snapshot: bool = False  # report_snapshot after it is written (or fails)
    partial: bool = False  # the rest of a frame already begun on the current connection


def _still_open(sock: socket.socket) -> bool:
    """Outgoing links carry no data back, so a readable socket means EOF or an error."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _send_all(sock: socket.socket, data: bytes, timeout: float) -> None:
    """sendall for a non-blocking socket, giving up after timeout seconds."""
    view = memoryview(data)
    clock = SteadyClock()
    deadline = clock.now() + timeout
    while view:
        try:
            n = sock.send(view)
        except BlockingIOError:
            n = 0
        view = view[n:]
        if view:
            left = deadline - clock.now()
            if left <= 0:
                raise TimeoutError("send timed out")
            select.select([], [sock], [], left)


class _Peer:
    """Sender side of one directed link."""

    def __init__(self, transport: Transport, peer_id: int, addr: tuple[str, int]) -> None:
        self.t = transport
        self.id = peer_id
        self.addr = addr
        self.cond = threading.Condition()
        self.pending: deque[Outgoing] = deque()
        self.busy = False  # the sender thread is writing a batch: callers must queue
        self.stopping = False
        self.sock: socket.socket | None = None  # connected, non-blocking
        self.thread = threading.Thread(target=self._run, name=f"send-n{peer_id}", daemon=True)
        self.thread.start()

    def send(self, wire: bytes, snapshot: bool) -> bool:
        """Write framed bytes at once if the link is idle, else queue; False if the queue is
        full."""
        with self.cond:
            sock = self.sock
            if sock is not None and not self.busy and not self.pending and not snapshot:
                n = self._try_write(sock, wire)
                if n == len(wire):
                    return True
                if n > 0:
                    self.pending.append(Outgoing(wire[n:], partial=True))
                    self.cond.notify()
                    return True
            if len(self.pending) >= QUEUE_SIZE:
                return False
            self.pending.append(Outgoing(wire, snapshot))
            self.cond.notify()
            return True

    @staticmethod
    def _try_write(sock: socket.socket, wire: bytes) -> int:
        """Bytes written without blocking; -1 if the link looks dead (the sender reconnects)."""
        if not _still_open(sock):
            return -1  # the far end (or a proxy healing a cut) closed it
        try:
            return sock.send(wire)
        except BlockingIOError:
            return 0
        except OSError:
            return -1

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self._close()

    def _take_batch(self) -> list[Outgoing] | None:
        with self.cond:
            while not self.pending and not self.stopping and not self.t.stopped.is_set():
                # untimed (a timed lock wait hangs under a faked clock): send() and stop()
                # notify, and Transport.stop() stops every peer
                self.cond.wait()
            if self.stopping or self.t.stopped.is_set():
                return None
            batch: list[Outgoing] = []
            while self.pending and len(batch) < MAX_BATCH:
                batch.append(self.pending.popleft())
            self.busy = True
            return batch

    def _connect(self) -> socket.socket:
        s = socket.create_connection(self.addr, timeout=CONNECT_TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        return s

    def _reconnect(self, batch: list[Outgoing]) -> tuple[socket.socket, bytes]:
        """A new connection, and the batch without the tail of a frame begun on the old one."""
        self._close()
        sock = self._connect()
        with self.cond:
            self.sock = sock
        return sock, b"".join(o.wire for o in batch if not o.partial)

    def _close(self) -> None:
        with self.cond:
            sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            batch = self._take_batch()
            if batch is None:
                break
            try:
                sock = self.sock
                if sock is not None and _still_open(sock):
                    try:
                        _send_all(sock, b"".join(o.wire for o in batch), SEND_TIMEOUT)
                    except OSError:
                        # an old connection may have died unseen: one retry on a new one
                        sock, data = self._reconnect(batch)
                        _send_all(sock, data, SEND_TIMEOUT)
                else:
                    sock, data = self._reconnect(batch)
                    _send_all(sock, data, SEND_TIMEOUT)
                backoff = BACKOFF_MIN
                for o in batch:
                    if o.snapshot:
                        self.t.on_snapshot_status(self.id, True)
            except OSError as e:
                log.debug("transport: send to n%d at %s failed: %s", self.id, self.addr, e)
                self._close()
                with self.cond:
                    self.busy = False
                self._fail(batch)
                # wait before reconnecting; whatever piles up meanwhile is stale: drop it
                if self.t.stopped.wait(backoff):
                    break
                backoff = min(backoff * 2, BACKOFF_MAX)
                self._fail(self._drop_queued())
            finally:
                with self.cond:
                    self.busy = False
        self._close()

    def _drop_queued(self) -> list[Outgoing]:
        with self.cond:
            dropped = list(self.pending)
            self.pending.clear()
        return dropped

    def _fail(self, batch: list[Outgoing]) -> None:
        if not batch:
            return
        self.t.on_unreachable(self.id)
        for o in batch:
            if o.snapshot:
                self.t.on_snapshot_status(self.id, False)


class _Inbound:
    """One accepted connection, read by the poller thread; frames go to on_frame."""

    def __init__(self, t: Transport, sock: socket.socket) -> None:
        self.t = t
        self.sock = sock
        self.buf = bytearray()

    def on_read(self) -> None:
        try:
            data = self.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        buf = self.buf
        buf += data
        off = 0
        size = len(buf)
        frames = []
        while size - off >= FRAME.size:
            n, crc = FRAME.unpack_from(buf, off)
            if n > MAX_FRAME:
                log.warning("transport: frame of %d bytes from a peer; closing", n)
                self.close()
                break
            end = off + FRAME.size + n
            if end > size:
                break
            payload = bytes(buf[off + FRAME.size : end])
            if zlib.crc32(payload) != crc:
                log.warning("transport: frame checksum mismatch; closing the connection")
                self.close()
                break
            frames.append(payload)
            off = end
        del buf[:off]
        for p in frames:  # the frames before a bad one are good: deliver them
            self.t.on_frame(p)

    def close(self) -> None:
        self.t.poller.unregister(self.sock)
        self.t.inbound.discard(self)
        try:
            self.sock.close()
        except OSError:
            pass


class Transport:
    def __init__(
        self,
        listen: tuple[str, int],
        peers: dict[int, tuple[str, int]],
        on_frame: Callable[[bytes], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        poller: Poller | None = None,
    ) -> None:
        """With a poller, its owner's thread reads inbound frames (it must call poller.wait);
        without one, start() runs a poller thread of the transport's own."""
        self.listen = listen
        self.addrs = dict(peers)
        self.on_frame = on_frame
        self.on_unreachable = on_unreachable
        self.on_snapshot_status = on_snapshot_status
        self.stopped = FdEvent()  # its timed wait (the reconnect backoff) polls
        self._own_poller = poller is None
        self.poller = poller if poller is not None else Poller()
        self._peers: dict[int, _Peer] = {}
        self._lock = threading.Lock()
        self.inbound: set[_Inbound] = set()
        self._server = socket.create_server(listen, reuse_port=False)
        self._server.setblocking(False)
        self._io_thread: threading.Thread | None = None
        self._io_finished = FdEvent()

    def start(self) -> None:
        self.poller.register(self._server, self._accept)
        if self._own_poller:
            self._io_thread = threading.Thread(target=self._io, name="peer-io", daemon=True)
            self._io_thread.start()

    def _io(self) -> None:
        try:
            while not self.stopped.is_set():
                self.poller.wait(0.5)
        finally:
            self._io_finished.set()

    def set_peer(self, peer_id: int, addr: tuple[str, int]) -> None:
        """Learn (or change) the address of a peer, e.g. from a conf change."""
        with self._lock:
            if self.addrs.get(peer_id) == addr:
                return
            self.addrs[peer_id] = addr
            old = self._peers.pop(peer_id, None)
        if old is not None:
            old.stop()

    def send(self, to: int, payload: bytes, snapshot: bool = False) -> None:
        self._send(to, frame(payload), snapshot)

    def send_batch(self, to: int, payloads: list[bytes]) -> None:
        """Several messages to one peer in one write (one wake-up of the receiver)."""
        if payloads:
            self._send(to, b"".join(frame(p) for p in payloads), False)

    def _send(self, to: int, wire: bytes, snapshot: bool) -> None:
        with self._lock:
            peer = self._peers.get(to)
            if peer is None:
                addr = self.addrs.get(to)
                if addr is None:
                    log.debug("transport: no address for n%d; dropping", to)
                    peer = None
                else:
                    peer = self._peers[to] = _Peer(self, to, addr)
        if peer is None or not peer.send(wire, snapshot):
            self.on_unreachable(to)
            if snapshot:
                self.on_snapshot_status(to, False)

    def _accept(self) -> None:
        for conn in accept_pending(self._server, "transport"):
            inb = _Inbound(self, conn)
            self.inbound.add(inb)
            self.poller.register(conn, inb.on_read)

    def stop(self) -> None:
        """Close every link; with a shared poller, call after its owner stopped waiting."""
        self.stopped.set()
        if self._io_thread is not None:
            self.poller.wake()
            join_within(self._io_thread, self._io_finished, 5.0)
        self.poller.unregister(self._server)
        try:
            self._server.close()
        except OSError:
            pass
        with self._lock:
            peers = list(self._peers.values())
        for p in peers:
            p.stop()
        for inb in list(self.inbound):
            inb.close()
        if self._own_poller:
            self.poller.close()
