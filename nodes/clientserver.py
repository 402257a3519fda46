"""The client protocol server: one thread per connection, one request at a time on each.

Requests go to the node loop as futures; a write whose outcome is not known in time is
answered ``info`` (it may still commit), never ``fail``.
"""

from __future__ import annotations

import logging
import socket
import socketserver
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from nodes.protocol import MAX_LINE, ProtocolError, Reply, parse_request

if TYPE_CHECKING:
    from nodes.node import Node

log = logging.getLogger(__name__)

GRACE = 0.5  # the loop expires requests itself; this only guards against a stuck loop


class _Handler(socketserver.StreamRequestHandler):
    server: ClientServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        node = self.server.node
        while not node.stopped.is_set():
            try:
                line = self.rfile.readline(MAX_LINE)
            except OSError:
                return
            if not line:
                return
            if not line.strip():
                continue
            reply = self._serve(node, line)
            try:
                self.wfile.write(reply.to_line())
                self.wfile.flush()
            except OSError:
                return

    def _serve(self, node: Node, line: bytes) -> Reply:
        try:
            req = parse_request(line)
        except ProtocolError as e:
            return Reply("fail", error=f"bad-request: {e}")
        fut = node.submit(req)
        try:
            reply = fut.result(timeout=node.cfg.request_timeout + GRACE)
        except FutureTimeout:
            status = "fail" if req.op == "get" else "info"
            reply = Reply(status, error="timeout")
        return Reply(reply.status, reply.value, reply.error, reply.leader, req.id)


class ClientServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    node: Node  # set by attach() before serve_forever()

    def __init__(self, addr: tuple[str, int]) -> None:
        super().__init__(addr, _Handler)

    def attach(self, node: Node) -> None:
        self.node = node
