"""The client server run by the node loop: order, ids, bad requests, clean shutdown."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from nodes.clientserver import MAX_QUEUED_BYTES, _Conn
from nodes.protocol import MAX_LINE
from tests.support.raftkv_cluster import Cluster


@pytest.fixture
def single(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, size=1, spare=0)
    try:
        c.start("n1")
        c.wait_leader(["n1"])
        yield c
    finally:
        c.close()


def _replies(sock: socket.socket, n: int) -> list[dict[str, Any]]:
    f = sock.makefile("rb")
    return [json.loads(f.readline()) for _ in range(n)]


def test_pipelined_requests_are_answered_in_order(single: Cluster) -> None:
    reqs = [
        {"op": "put", "key": "k", "value": 1, "id": 1},
        {"op": "cas", "key": "k", "expected": 1, "new": 2, "id": 2},
        {"op": "get", "key": "k", "id": 3},
        {"op": "cas", "key": "k", "expected": 1, "new": 3, "id": 4},
    ]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in reqs)
    with socket.create_connection(("127.0.0.1", single.members["n1"].client), timeout=5) as s:
        s.sendall(data[:7])  # a request split across reads
        s.sendall(data[7:] + b'{"op": "nope", "key": "k", "id": 5}\nnot json\n')
        got = _replies(s, 6)
    assert [r.get("id") for r in got[:4]] == [1, 2, 3, 4]  # a bad request has no id to echo
    assert [r["status"] for r in got] == ["ok", "ok", "ok", "fail", "fail", "fail"]
    assert got[2]["value"] == 2
    assert got[3]["error"] == "cas-mismatch"
    assert got[4]["error"].startswith("bad-request") and got[5]["error"].startswith("bad-request")


def test_many_connections_and_sigterm(single: Cluster) -> None:
    conns = [single.client("n1") for _ in range(20)]
    try:
        for i, kc in enumerate(conns):
            assert kc.put(f"c{i}", i).status == "ok"
        for i, kc in enumerate(conns):
            assert kc.get(f"c{i}").value == i
    finally:
        for kc in conns:
            kc.close()
    assert single.stop("n1") == 0


def _send_lines(c: Cluster, data: bytes, n: int) -> list[dict[str, Any]]:
    with socket.create_connection(("127.0.0.1", c.members["n1"].client), timeout=5) as s:
        s.sendall(data)
        return _replies(s, n)


@pytest.mark.parametrize("depth", [100_000, 400_000])
def test_deeply_nested_json_is_a_bad_request_not_a_dead_node(single: Cluster, depth: int) -> None:
    # json.loads raises RecursionError, not ValueError, on deep nesting (issue 20, item 2)
    nested = b'{"op": "put", "key": "k", "value": ' + b"[" * depth + b"]" * depth + b"}\n"
    got = _send_lines(single, nested + b'{"op": "put", "key": "k", "value": 1, "id": 2}\n', 2)
    assert got[0]["status"] == "fail" and got[0]["error"].startswith("bad-request")
    assert got[1] == {"status": "ok", "value": 1, "id": 2}
    assert single.members["n1"].proc is not None and single.members["n1"].proc.poll() is None


def test_an_overlong_line_gets_exactly_one_reply(single: Cluster) -> None:
    # one bad-request reply for the whole line, however it arrives; later replies on the
    # connection stay matched to their requests (issue 20, item 5)
    long_line = b'{"op": "put", "key": "k", "value": "' + b"x" * (MAX_LINE + 500_000) + b'"}\n'
    got = _send_lines(single, long_line + b'{"op": "get", "key": "k", "id": 7}\n', 2)
    assert got[0]["status"] == "fail" and "longer than" in got[0]["error"]
    assert got[1] == {"status": "ok", "value": None, "id": 7}
    with socket.create_connection(("127.0.0.1", single.members["n1"].client), timeout=5) as s:
        s.sendall(long_line + b'{"op": "get", "key": "k", "id": 8}\n')
        s.shutdown(socket.SHUT_WR)
        rest = s.makefile("rb").read()
    assert len(rest.splitlines()) == 2  # nothing more: the tail of the long line is no request


def _strict(line: bytes) -> dict[str, Any]:
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    body: dict[str, Any] = json.loads(line, parse_constant=refuse)
    return body


@pytest.mark.parametrize(
    "request_line",
    [
        b'{"op": "get", "key": "k", "id": NaN}\n',
        b'{"op": "get", "key": "k", "id": Infinity}\n',
        b'{"op": "get", "key": "k", "id": -Infinity}\n',
        b'{"op": "get", "key": "k", "id": 1e400}\n',
        b'{"op": "put", "key": "k", "value": NaN}\n',
        b'{"op": "get", "key": "k", "id": [1, {"a": NaN}]}\n',
    ],
)
def test_every_reply_is_json_even_for_nan(single: Cluster, request_line: bytes) -> None:
    with socket.create_connection(("127.0.0.1", single.members["n1"].client), timeout=5) as s:
        s.sendall(request_line + b'{"op": "get", "key": "k", "id": 2}\n')
        f = s.makefile("rb")
        first, second = _strict(f.readline()), _strict(f.readline())
    assert first["status"] == "fail" and first["error"].startswith("bad-request")
    assert second == {"status": "ok", "value": None, "id": 2}


class _FakeSock:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.sent = b""
        self.closed = False

    def recv(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def send(self, data: bytes) -> int:
        self.sent += bytes(data)
        return len(data)

    def close(self) -> None:
        self.closed = True


class _Stuck:
    """A node whose first request never completes, so every later line stays queued."""

    def __init__(self) -> None:
        self.node = self
        self.conns: set[object] = set()

    def submit(self, req: object, from_loop: bool = False) -> Future[object]:
        return Future()

    def poller(self) -> _Stuck:
        return self

    def unregister(self, sock: object) -> None:
        pass


def test_bytes_queued_on_one_connection_are_bounded() -> None:
    line = b'{"op": "put", "key": "k", "value": "' + b"v" * (MAX_LINE - 100) + b'"}\n'
    sock = _FakeSock([line] * 12)
    conn = _Conn(_Stuck(), sock)  # type: ignore[arg-type]
    for _ in range(12):
        conn.on_read()
        if conn.closed:
            break
    assert conn.closed and sock.closed  # after ~8 MiB, not after 1024 lines of 1 MiB
    assert conn.queued <= MAX_QUEUED_BYTES + MAX_LINE
