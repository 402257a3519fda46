"""The client protocol server, run by the node loop thread through its Poller.

The loop reads a request line, submits it without a thread hand-off, and writes the reply
from the future's callback (futures of client requests are completed on the loop thread).
Requests on one connection are served one at a time, in order. A write whose outcome is not
known in time is answered ``info`` (it may still commit), never ``fail``; the loop expires
waiting requests itself at their deadline (nodes/pending.py).
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING

from nodes.poller import Acceptor
from nodes.protocol import MAX_LINE, ProtocolError, Reply, Request, parse_request

if TYPE_CHECKING:
    from nodes.node import Node
    from nodes.poller import Poller

log = logging.getLogger(__name__)

RECV_BYTES = 1 << 16
BACKLOG = 128
MAX_QUEUED = 1024  # requests read ahead of their turn; more breaks "one request at a time"
MAX_QUEUED_BYTES = 8 << 20  # and their bytes: 1024 lines of up to 1 MiB would be 1 GiB
TOO_LONG = b""  # stands in the queue for a line longer than MAX_LINE


class _Conn:
    def __init__(self, server: ClientServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.rbuf = bytearray()
        self.wbuf = bytearray()
        self.lines: deque[bytes] = deque()
        self.queued = 0  # bytes in self.lines
        self.discarding = False  # inside an over-long line, already answered: skip to its end
        self.busy = False  # a request of this connection is being served
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
        if self.discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return
            data = data[nl + 1 :]
            self.discarding = False
        rbuf = self.rbuf
        rbuf += data
        start = 0
        while (nl := rbuf.find(b"\n", start)) >= 0:
            line = bytes(rbuf[start : nl + 1])
            start = nl + 1
            if len(line) > MAX_LINE + 1:
                line = TOO_LONG
            elif not line.strip():
                continue
            self.lines.append(line)
            self.queued += len(line)
        del rbuf[:start]
        if len(rbuf) > MAX_LINE:
            # one reply for the whole line, in its place; the rest of it is skipped as it
            # arrives (answering each piece would shift every later reply on the connection)
            rbuf.clear()
            self.discarding = True
            self.lines.append(TOO_LONG)
        if len(self.lines) > MAX_QUEUED or self.queued > MAX_QUEUED_BYTES:
            # nothing bounds the replies such a client leaves unread: drop it (its writes in
            # flight are indeterminate to it, as after any lost connection)
            log.warning(
                "client server: more than %d requests or %d bytes queued on one connection; closing",
                MAX_QUEUED, MAX_QUEUED_BYTES,
            )
            self.close()
            return
        self._next()

    def _next(self) -> None:
        while not self.busy and self.lines and not self.closed:
            line = self.lines.popleft()
            self.queued -= len(line)
            try:
                if line is TOO_LONG:
                    raise ProtocolError(f"request line longer than {MAX_LINE} bytes")
                req = parse_request(line)
            except ProtocolError as e:
                self._write(Reply("fail", error=f"bad-request: {e}").to_line())
                continue
            self.busy = True
            fut = self.server.node.submit(req, from_loop=True)
            fut.add_done_callback(lambda f, req=req: self._answer(req, f))  # type: ignore[misc]

    def _answer(self, req: Request, fut: Future[Reply]) -> None:
        reply = fut.result()
        self.busy = False
        if self.closed:
            return
        self._write(Reply(reply.status, reply.value, reply.error, reply.leader, req.id).to_line())
        self._next()

    def _write(self, data: bytes) -> None:
        if self.wbuf:
            self.wbuf += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        if n < len(data):
            self.wbuf += data[n:]
            self.server.poller().want_write(self.sock, self._on_write)

    def _on_write(self) -> None:
        try:
            n = self.sock.send(self.wbuf)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        del self.wbuf[:n]
        if not self.wbuf:
            self.server.poller().want_write(self.sock, None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.poller().unregister(self.sock)
        self.server.conns.discard(self)
        try:
            self.sock.close()
        except OSError:
            pass


class ClientServer:
    """Binds at construction (a busy port is reported before the data dir is touched)."""

    node: Node  # set by attach()

    def __init__(self, addr: tuple[str, int]) -> None:
        self.sock = socket.create_server(addr, backlog=BACKLOG)
        self.sock.setblocking(False)
        self.conns: set[_Conn] = set()

    def attach(self, node: Node) -> None:
        """Serve on node's loop; call before node.start() (the poller is not yet waited on)."""
        self.node = node
        node.poller.register_listener(self.sock, Acceptor("client server", self._accepted))

    def poller(self) -> Poller:
        return self.node.poller

    def _accepted(self, conn: socket.socket) -> None:
        c = _Conn(self, conn)
        self.conns.add(c)
        self.node.poller.register(conn, c.on_read)

    def close(self) -> None:
        """Close the listener and every connection; call once the node loop has stopped."""
        self.node.poller.unregister(self.sock)
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.conns):
            c.close()
