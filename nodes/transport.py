"""Peer transport: length-prefixed frames over TCP, one outgoing connection per peer.

A frame is ``length u32 | crc32 u32 | payload`` (big-endian); a bad length or checksum (a
proxy that dropped bytes mid-stream) closes the connection, and the sender reconnects.

Every connection starts with a hello frame naming its sender and receiver and proving the
cluster's token: ``magic "\\xfeRKV-HELLO-1" | from u64 | to u64 | HMAC-SHA256(token, magic |
from | to)`` (big-endian; with no token the key is empty). The receiver checks that it is the
addressee, the MAC, and that the sender is a peer it may hear from (``admit``); anything else
closes the connection. Frames are then delivered with the sender's id. The token is never
sent, so a node dialling a wrong address does not give it away; the link is not encrypted,
and a recorded hello can be replayed by whoever can see the traffic. The magic's first byte
is no MessageType, so a frame-aware proxy (harness/msgfilter.py) forwards the hello as it is.
Without a token, a connection may skip the hello (the sender is then only what its messages
claim, and the node checks that); with one, only a hello may come first.

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

import hashlib
import hmac
import logging
import select
import socket
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from nodes.fdwait import FdEvent, join_within
from nodes.poller import Acceptor, Poller
from nodes.ratelog import Throttled
from nodes.steadyclock import SteadyClock

log = logging.getLogger(__name__)

FRAME = struct.Struct(">II")  # payload length, crc32 of the payload
MAX_FRAME = 64 << 20  # a snapshot is one frame (harness/msgfilter.py mirrors this bound)
HELLO_MAGIC = b"\xfeRKV-HELLO-1"
HELLO = struct.Struct(">12sQQ32s")  # magic, from, to, HMAC-SHA256
MAX_UNIDENTIFIED_FRAME = 4 << 20  # without a token, before (or without) a hello
MAX_UNIDENTIFIED = 16  # connections not (yet) identified by a hello; the oldest goes first
HELLO_TIMEOUT = 5.0  # with a token, a connection silent this long after accept is closed
MAX_CONNS_PER_PEER = 4  # inbound connections kept per identified sender; the oldest goes
QUEUE_SIZE = 4096
MAX_BATCH = 512
CONNECT_TIMEOUT = 1.0
SEND_TIMEOUT = 3.0
BACKOFF_MIN = 0.02
BACKOFF_MAX = 0.5
RECV_BYTES = 1 << 18


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def hello_mac(token: bytes | None, frm: int, to: int) -> bytes:
    msg = HELLO_MAGIC + frm.to_bytes(8, "big") + to.to_bytes(8, "big")
    return hmac.new(token or b"", msg, hashlib.sha256).digest()


def hello_frame(token: bytes | None, frm: int, to: int) -> bytes:
    """The first frame of every connection from `frm` to `to`."""
    return frame(HELLO.pack(HELLO_MAGIC, frm, to, hello_mac(token, frm, to)))


def is_hello(payload: bytes) -> bool:
    return len(payload) == HELLO.size and payload.startswith(HELLO_MAGIC)


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
        self.hello = hello_frame(transport.token, transport.local_id, peer_id)
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
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(self.hello)  # first on the wire, before any queued frame
            s.setblocking(False)
        except OSError:
            s.close()
            raise
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

    def __init__(self, t: Transport, sock: socket.socket, addr: str) -> None:
        self.t = t
        self.sock = sock
        self.addr = addr
        self.buf = bytearray()
        self.peer: int | None = None  # the sender, once its hello checked out
        self.accepted = time.monotonic()
        self.closed = False

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
        frames: list[tuple[bytes, int | None]] = []
        while size - off >= FRAME.size:
            n, crc = FRAME.unpack_from(buf, off)
            if n > self._limit():
                # before a hello, nothing bigger than one is buffered (issue 20, item 5)
                self._refuse("oversized", f"a frame of {n} bytes" + ("" if self.peer else " before any handshake"))
                break
            end = off + FRAME.size + n
            if end > size:
                break
            payload = bytes(buf[off + FRAME.size : end])
            off = end
            if zlib.crc32(payload) != crc:
                self._refuse("checksum", "frame checksum mismatch")
                break
            if is_hello(payload):
                if not self._hello(payload):
                    break
                continue
            if self.peer is None and self.t.token is not None:
                self._refuse("no-hello", "no handshake")
                break
            frames.append((payload, self.peer))
        del buf[:off]
        for p, sender in frames:  # the frames before a bad one are good: deliver them
            self.t.on_frame(p, sender)

    def _limit(self) -> int:
        if self.peer is not None:
            return MAX_FRAME
        return HELLO.size if self.t.token is not None else MAX_UNIDENTIFIED_FRAME

    def _hello(self, payload: bytes) -> bool:
        """Check a hello; a later one (a proxy replaying a held stream) must agree."""
        _, frm, to, mac = HELLO.unpack(payload)
        t = self.t
        if to != t.local_id:
            return self._refuse("misaddressed", f"handshake for n{to}, this is n{t.local_id}")
        if not hmac.compare_digest(mac, hello_mac(t.token, frm, to)):
            return self._refuse("token", f"handshake from n{frm} with a wrong token")
        if self.peer is not None and frm != self.peer:
            return self._refuse("id", f"n{self.peer} sent a handshake as n{frm}")
        if not t.admit(frm):
            return self._refuse("non-member", f"n{frm} is not a peer of this node")
        if self.peer is None:
            self.peer = frm
            t.identified(self)
        return True

    def _refuse(self, key: str, why: str) -> bool:
        self.t.throttle.warning(key, "transport: refused peer connection from %s: %s", self.addr, why)
        self.close()
        return False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.t.forget(self)
        self.t.poller.unregister(self.sock)
        try:
            self.sock.close()
        except OSError:
            pass


class Transport:
    def __init__(
        self,
        listen: tuple[str, int],
        peers: dict[int, tuple[str, int]],
        on_frame: Callable[[bytes, int | None], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        poller: Poller | None = None,
        *,
        local_id: int,
        token: bytes | None = None,
        admit: Callable[[int], bool] | None = None,
    ) -> None:
        """With a poller, its owner's thread reads inbound frames (it must call poller.wait);
        without one, start() runs a poller thread of the transport's own. `on_frame(payload,
        sender)` gets the sender's id from its hello (None: no hello, only without a token);
        `admit(peer)` says whether a sender may connect at all (called on the poller thread)."""
        self.listen = listen
        self.addrs = dict(peers)
        self.local_id = local_id
        self.token = token
        self.admit: Callable[[int], bool] = admit if admit is not None else (lambda p: p != local_id)
        self.throttle = Throttled(log)
        self._unidentified: deque[_Inbound] = deque()
        self._by_peer: dict[int, deque[_Inbound]] = {}
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
        self.poller.register_listener(self._server, Acceptor("transport", self._accepted))
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

    def _accepted(self, conn: socket.socket) -> None:
        try:
            host, port = conn.getpeername()[:2]
            addr = f"{host}:{port}"
        except OSError:
            addr = "?"
        self._sweep()
        inb = _Inbound(self, conn, addr)
        self.inbound.add(inb)
        self._unidentified.append(inb)
        self.poller.register(conn, inb.on_read)

    def _sweep(self) -> None:
        """Bound the connections no hello has identified: the oldest beyond MAX_UNIDENTIFIED
        go, and with a token so does any silent for HELLO_TIMEOUT (a peer sends its hello at
        once), so strangers cannot hold the node's descriptors or memory."""
        q = self._unidentified
        now = time.monotonic()
        while q and (
            len(q) >= MAX_UNIDENTIFIED
            or (self.token is not None and now - q[0].accepted > HELLO_TIMEOUT)
        ):
            q[0]._refuse("idle", "no handshake in time")

    def identified(self, inb: _Inbound) -> None:
        assert inb.peer is not None
        try:
            self._unidentified.remove(inb)
        except ValueError:
            pass
        conns = self._by_peer.setdefault(inb.peer, deque())
        conns.append(inb)
        while len(conns) > MAX_CONNS_PER_PEER:
            conns[0]._refuse("too-many", f"more than {MAX_CONNS_PER_PEER} connections from n{inb.peer}")

    def forget(self, inb: _Inbound) -> None:
        self.inbound.discard(inb)
        if inb.peer is None:
            try:
                self._unidentified.remove(inb)
            except ValueError:
                pass
        else:
            conns = self._by_peer.get(inb.peer)
            if conns is not None and inb in conns:
                conns.remove(inb)

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
