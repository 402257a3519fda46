"""raftkv client library: one TCP connection, one request at a time (not thread-safe).

Outcomes follow the protocol: ``ok`` happened, ``fail`` certainly did not happen, ``info``
unknown. A connection refused before anything was sent is ``fail``; a timeout or a broken
connection after sending is ``info`` (for a get, ``fail``: a read changes nothing).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from nodes.protocol import MAX_LINE, ProtocolError, Request, parse_reply, request_line


@dataclass(frozen=True)
class ClientResult:
    status: str  # "ok" | "fail" | "info"
    value: Any = None
    error: str | None = None
    leader: str | None = None


class KVClient:
    def __init__(self, addr: tuple[str, int], timeout: float = 2.0) -> None:
        self.addr = addr
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._rfile: Any = None

    def _connect(self) -> None:
        s = socket.create_connection(self.addr, timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(self.timeout)
        self._sock = s
        self._rfile = s.makefile("rb")

    def close(self) -> None:
        if self._rfile is not None:
            try:
                self._rfile.close()
            except OSError:
                pass
            self._rfile = None
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def __enter__(self) -> KVClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, req: Request) -> ClientResult:
        unknown = "fail" if req.op == "get" else "info"
        if self._sock is None:
            try:
                self._connect()
            except OSError as e:
                self.close()
                return ClientResult("fail", error=f"connect: {e.strerror or e}")
        assert self._sock is not None
        try:
            self._sock.sendall(request_line(req))
        except OSError as e:
            # some bytes may have reached the node: for a write that is indeterminate
            self.close()
            return ClientResult(unknown, error=f"send: {e.strerror or e}")
        try:
            line = self._rfile.readline(MAX_LINE)
        except TimeoutError:
            self.close()
            return ClientResult(unknown, error="timeout")
        except OSError as e:
            self.close()
            return ClientResult(unknown, error=f"recv: {e.strerror or e}")
        if not line:
            self.close()
            return ClientResult(unknown, error="connection closed")
        try:
            rep = parse_reply(line)
        except ProtocolError as e:
            self.close()
            return ClientResult(unknown, error=str(e))
        return ClientResult(rep.status, rep.value, rep.error, rep.leader)

    def get(self, key: str, read: str | None = None) -> ClientResult:
        return self._call(Request("get", key, read=read))

    def put(self, key: str, value: Any) -> ClientResult:
        return self._call(Request("put", key, value=value))

    def cas(self, key: str, expected: Any, new: Any) -> ClientResult:
        return self._call(Request("cas", key, expected=expected, new=new))

    def delete(self, key: str) -> ClientResult:
        return self._call(Request("delete", key))
