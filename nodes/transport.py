"""Peer transport: length-prefixed frames over TCP, one outgoing connection per peer.

A frame is ``length u32 | crc32 u32 | payload`` (big-endian); a bad length or checksum (a
proxy that dropped bytes mid-stream) closes the connection, and the sender reconnects.
Each peer has a bounded queue and a sender thread that batches everything queued into one
write, reconnects with exponential backoff, and reports failures (unreachable peer, failed
snapshot) through callbacks, which the node turns into Raft's report_unreachable /
report_snapshot. Messages that cannot be sent are dropped: Raft retransmits.
Inbound connections are accepted on the listen address; every frame goes to ``on_frame``.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

FRAME = struct.Struct(">II")  # payload length, crc32 of the payload
MAX_FRAME = 64 << 20
QUEUE_SIZE = 4096
MAX_BATCH = 512
CONNECT_TIMEOUT = 1.0
SEND_TIMEOUT = 3.0
BACKOFF_MIN = 0.02
BACKOFF_MAX = 0.5


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class Outgoing:
    payload: bytes
    snapshot: bool = False  # report_snapshot after it is written (or fails)


def _still_open(sock: socket.socket) -> bool:
    """Outgoing links carry no data back, so a readable socket means EOF or an error."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class _Peer:
    """Sender side of one directed link."""

    def __init__(self, transport: Transport, peer_id: int, addr: tuple[str, int]) -> None:
        self.t = transport
        self.id = peer_id
        self.addr = addr
        self.q: queue.Queue[Outgoing | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self.sock: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, name=f"send-n{peer_id}", daemon=True)
        self.thread.start()

    def enqueue(self, item: Outgoing) -> bool:
        try:
            self.q.put_nowait(item)
            return True
        except queue.Full:
            return False

    def _drain(self, first: Outgoing) -> list[Outgoing]:
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.q.put_nowait(None)  # keep the stop signal for the loop
                break
            batch.append(item)
        return batch

    def _connect(self) -> socket.socket:
        s = socket.create_connection(self.addr, timeout=CONNECT_TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(SEND_TIMEOUT)
        return s

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while not self.t.stopped.is_set():
            item = self.q.get()
            if item is None:
                break
            batch = self._drain(item)
            data = b"".join(frame(o.payload) for o in batch)
            try:
                if self.sock is not None and not _still_open(self.sock):
                    self._close()  # the far end (or a proxy healing a cut) closed it
                fresh = self.sock is None
                if self.sock is None:
                    self.sock = self._connect()
                try:
                    self.sock.sendall(data)
                except OSError:
                    if fresh:
                        raise
                    # an old connection may have died unseen: one immediate retry on a new one
                    self._close()
                    self.sock = self._connect()
                    self.sock.sendall(data)
                backoff = BACKOFF_MIN
                for o in batch:
                    if o.snapshot:
                        self.t.on_snapshot_status(self.id, True)
            except OSError as e:
                log.debug("transport: send to n%d at %s failed: %s", self.id, self.addr, e)
                self._close()
                self._fail(batch)
                # wait before reconnecting; whatever piles up meanwhile is stale: drop it
                if self.t.stopped.wait(backoff):
                    break
                backoff = min(backoff * 2, BACKOFF_MAX)
                self._fail(self._drop_queued())
        self._close()

    def _drop_queued(self) -> list[Outgoing]:
        dropped: list[Outgoing] = []
        while True:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                return dropped
            if item is None:
                self.q.put_nowait(None)
                return dropped
            dropped.append(item)

    def _fail(self, batch: list[Outgoing]) -> None:
        if not batch:
            return
        self.t.on_unreachable(self.id)
        for o in batch:
            if o.snapshot:
                self.t.on_snapshot_status(self.id, False)


class Transport:
    def __init__(
        self,
        listen: tuple[str, int],
        peers: dict[int, tuple[str, int]],
        on_frame: Callable[[bytes], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
    ) -> None:
        self.listen = listen
        self.addrs = dict(peers)
        self.on_frame = on_frame
        self.on_unreachable = on_unreachable
        self.on_snapshot_status = on_snapshot_status
        self.stopped = threading.Event()
        self._peers: dict[int, _Peer] = {}
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server = socket.create_server(listen, reuse_port=False)
        self._accept_thread = threading.Thread(target=self._accept, name="peer-accept", daemon=True)

    def start(self) -> None:
        self._accept_thread.start()

    def set_peer(self, peer_id: int, addr: tuple[str, int]) -> None:
        """Learn (or change) the address of a peer, e.g. from a conf change."""
        with self._lock:
            if self.addrs.get(peer_id) == addr:
                return
            self.addrs[peer_id] = addr
            old = self._peers.pop(peer_id, None)
        if old is not None:
            old.q.put(None)

    def send(self, to: int, payload: bytes, snapshot: bool = False) -> None:
        with self._lock:
            peer = self._peers.get(to)
            if peer is None:
                addr = self.addrs.get(to)
                if addr is None:
                    log.debug("transport: no address for n%d; dropping", to)
                    peer = None
                else:
                    peer = self._peers[to] = _Peer(self, to, addr)
        if peer is None or not peer.enqueue(Outgoing(payload, snapshot)):
            self.on_unreachable(to)
            if snapshot:
                self.on_snapshot_status(to, False)

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                break
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._read, args=(conn,), name="peer-read", daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        f = conn.makefile("rb", buffering=1 << 16)
        try:
            while not self.stopped.is_set():
                head = f.read(FRAME.size)
                if len(head) < FRAME.size:
                    break
                n, crc = FRAME.unpack(head)
                if n > MAX_FRAME:
                    log.warning("transport: frame of %d bytes from a peer; closing", n)
                    break
                payload = f.read(n)
                if len(payload) < n:
                    break
                if zlib.crc32(payload) != crc:
                    log.warning("transport: frame checksum mismatch; closing the connection")
                    break
                self.on_frame(payload)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                f.close()
                conn.close()
            except OSError:
                pass

    def stop(self) -> None:
        self.stopped.set()
        try:
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread on Linux
        except OSError:
            pass
        try:
            self._server.close()
        except OSError:
            pass
        with self._lock:
            peers = list(self._peers.values())
            conns = list(self._conns)
        for p in peers:
            try:
                p.q.put_nowait(None)
            except queue.Full:
                pass
            p._close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
