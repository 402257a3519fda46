"""Per-destination HTTP peer proxies learn each connection's sender from its first request,
blackhole each direction of a cut link (silence, not refusal), and recover on heal; link
conditions delay each direction of a link's streams."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.net.etcd_proxy import HeadError, HttpPeerProxies, parse_head, with_connection_close
from harness.net.linkcond import LinkConditions

NODES = ("n1", "n2", "n3")


class Member:
    """Stands in for a member's peer port: records what each connection sent and echoes it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr: tuple[str, int] = self.sock.getsockname()[:2]
        self.accepted = 0
        self.received: list[bytearray] = []
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                buf = bytearray()
                self.received.append(buf)
            threading.Thread(target=self._echo, args=(c, buf), daemon=True).start()

    def _echo(self, c: socket.socket, buf: bytearray) -> None:
        with c:
            while True:
                try:
                    data = c.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    buf += data
                c.sendall(data)

    def got(self) -> bytes:
        with self._lock:
            return b"".join(bytes(b) for b in self.received)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def cluster() -> Iterator[tuple[HttpPeerProxies, dict[str, Member]]]:
    members = {n: Member() for n in NODES}
    proxies = HttpPeerProxies({n: m.addr for n, m in members.items()})
    yield proxies, members
    proxies.close()
    for m in members.values():
        m.close()


def url(proxies: HttpPeerProxies, node: str) -> str:
    host, port = proxies.address(node)
    return f"http://{host}:{port}"


def stream_request(proxies: HttpPeerProxies, src: str, dst: str) -> bytes:
    """A request like etcd's stream dial from src to dst (X-Server-From is a member id)."""
    return (f"GET /raft/stream/msgapp/{src} HTTP/1.1\r\nHost: x\r\nX-Server-From: 8e9e05c52164694d\r\n"
            f"X-PeerURLs: {url(proxies, src)}\r\nX-Raft-To: {dst}\r\n\r\n").encode()


def dial(proxies: HttpPeerProxies, dst: str) -> socket.socket:
    s = socket.create_connection(proxies.address(dst), timeout=2)
    s.settimeout(0.4)
    return s


def echoed(s: socket.socket, data: bytes) -> bool:
    """Send `data` and report whether it came back (False on silence)."""
    s.sendall(data)
    got = b""
    deadline = time.monotonic() + 2
    while len(got) < len(data) and time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            return False
        if not chunk:
            return False
        got += chunk
    return got.endswith(data)


def closed_by_peer(s: socket.socket) -> bool:
    s.settimeout(2)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


def eventually(fn: object, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"GET /raft/probing HTTP/1.1\r\nHost: a", None),
        (b"POST /raft HTTP/1.1\r\nX-PeerURLs: http://127.0.0.1:5\r\nX-PeerURLs: http://127.0.0.1:6", None),
        (b"\x16\x03\x01\x02\x00\x01", "not an HTTP/1.x request line"),
        (b"GET / HTTP/2.0", "not an HTTP/1.x request line"),
        (b"GET / HTTP/1.1\r\nno colon here", "malformed header line"),
        (b"GET / HTTP/1.1\r\n X-Folded: a", "malformed header line"),
    ],
)
def test_parse_head(raw: bytes, error: str | None) -> None:
    if error is not None:
        with pytest.raises(HeadError, match=error):
            parse_head(raw)
        return
    head = parse_head(raw)
    assert head.method in ("GET", "POST")
    if head.method == "POST":  # a repeated header keeps its last value
        assert head.headers["x-peerurls"] == "http://127.0.0.1:6"


@given(st.dictionaries(st.sampled_from(["Host", "Connection", "Accept", "X-Thing", "connection"]),
                       st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True), max_size=5))
def test_connection_close_replaces_any_connection_header(headers: dict[str, str]) -> None:
    raw = "\r\n".join(["GET /version HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]).encode()
    head = parse_head(with_connection_close(raw))
    assert head.headers["connection"] == "close"
    others = {k.lower(): v for k, v in headers.items() if k.lower() != "connection"}
    assert {k: v for k, v in head.headers.items() if k != "connection"} == others


def test_sender_is_learned_and_a_cut_blackholes_an_established_stream(
    cluster: tuple[HttpPeerProxies, dict[str, Member]],
) -> None:
    proxies, members = cluster
    s = dial(proxies, "n2")
    req = stream_request(proxies, "n1", "n2")
    assert echoed(s, req)
    assert members["n2"].got() == req  # forwarded unchanged
    assert proxies.stats()["n1->n2"]["conns"] == 1

    proxies.set_cut({("n1", "n2"), ("n2", "n1")})
    assert not echoed(s, b"during the cut")  # silence: neither refused nor closed
    assert b"during" not in members["n2"].got()
    assert proxies.stats()["n1->n2"]["dropped"] >= len(b"during the cut")
    # A new connection across the cut never reaches n2.
    before = members["n2"].accepted
    s2 = dial(proxies, "n2")
    assert not echoed(s2, stream_request(proxies, "n1", "n2"))
    assert members["n2"].accepted == before
    # Links not in the cut still work.
    s3 = dial(proxies, "n2")
    assert echoed(s3, stream_request(proxies, "n3", "n2") + b"payload")

    proxies.set_cut(set())
    assert closed_by_peer(s) and closed_by_peer(s2)  # they lived through the cut
    assert echoed(s3, b"untouched")
    s4 = dial(proxies, "n2")
    assert echoed(s4, stream_request(proxies, "n1", "n2") + b"after heal")
    for sock in (s, s2, s3, s4):
        sock.close()


def test_a_one_way_cut_drops_only_that_direction(cluster: tuple[HttpPeerProxies, dict[str, Member]]) -> None:
    """Grudge {n1: {n2}}: n1 drops what n2 sends; on n1's own connection to n2 that is the
    response direction (where etcd streams n2's messages to n1)."""
    proxies, members = cluster
    s = dial(proxies, "n2")
    assert echoed(s, stream_request(proxies, "n1", "n2"))
    proxies.set_cut({("n2", "n1")})
    assert not echoed(s, b"request bytes")
    assert eventually(lambda: b"request bytes" in members["n2"].got())  # n1 -> n2 still flows
    assert proxies.cut_links() == {("n2", "n1")}
    proxies.set_cut(set())
    assert closed_by_peer(s)
    s.close()


def test_requests_naming_no_sender_pass_once_each(cluster: tuple[HttpPeerProxies, dict[str, Member]]) -> None:
    """Probes and /version polls carry no sender: forwarded even across a cut, each on its own
    connection so that a pooled connection is never reused for Raft traffic."""
    proxies, members = cluster
    proxies.set_cut({("n1", "n2"), ("n2", "n1"), ("n3", "n2"), ("n2", "n3")})
    s = dial(proxies, "n2")
    s.sendall(b"GET /raft/probing HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    want = b"GET /raft/probing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert eventually(lambda: members["n2"].got() == want)  # rewritten, and across the cut
    s.settimeout(2)
    assert s.recv(4096) == want  # the answer comes back too
    assert proxies.anonymous_requests == 1 and proxies.stats() == {}
    s.close()


@pytest.mark.parametrize(
    "head",
    [
        b"POST /raft HTTP/1.1\r\nX-Server-From: 1\r\nX-PeerURLs: http://127.0.0.1:1\r\n\r\n",  # not a proxy
        b"POST /raft HTTP/1.1\r\nX-Server-From: 1\r\n\r\n",  # a sender without its URLs
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # not HTTP
    ],
)
def test_unknown_senders_are_refused(cluster: tuple[HttpPeerProxies, dict[str, Member]], head: bytes) -> None:
    proxies, members = cluster
    s = dial(proxies, "n3")
    s.sendall(head)
    assert closed_by_peer(s)
    assert members["n3"].accepted == 0 and proxies.refused == 1
    s.close()


def test_a_member_dialing_itself_is_never_cut(cluster: tuple[HttpPeerProxies, dict[str, Member]]) -> None:
    proxies, members = cluster
    proxies.set_cut({("n1", "n2"), ("n2", "n1")})
    s = dial(proxies, "n1")
    assert echoed(s, stream_request(proxies, "n1", "n1"))
    assert members["n1"].accepted == 1
    s.close()


def test_unknown_nodes_in_a_cut_are_an_error(cluster: tuple[HttpPeerProxies, dict[str, Member]]) -> None:
    proxies, _ = cluster
    with pytest.raises(KeyError, match="n9"):
        proxies.set_cut({("n1", "n9")})


def round_trip(s: socket.socket, data: bytes) -> float:
    t0 = time.monotonic()
    s.settimeout(3)
    assert echoed(s, data)
    return time.monotonic() - t0


def test_link_delay_applies_to_each_direction_of_a_members_stream(
    cluster: tuple[HttpPeerProxies, dict[str, Member]],
) -> None:
    proxies, members = cluster
    s = dial(proxies, "n2")
    assert echoed(s, stream_request(proxies, "n1", "n2"))
    assert round_trip(s, b"fast") < 0.1
    proxies.set_conditions("f1", {("n1", "n2"): LinkConditions(delay_ms=150, unit="byte")})
    assert 0.15 <= round_trip(s, b"request leg") < 0.15 + 0.25
    # what n2 sends back (stream payload, responses) travels n2 -> n1
    proxies.set_conditions("f2", {("n2", "n1"): LinkConditions(delay_ms=100, unit="byte")})
    assert 0.25 <= round_trip(s, b"both legs") < 0.25 + 0.25
    # a link between other members is untouched
    s3 = dial(proxies, "n3")
    assert round_trip(s3, stream_request(proxies, "n2", "n3")) < 0.1
    assert proxies.clear_conditions() == [("n1", "n2"), ("n2", "n1")]
    assert round_trip(s, b"healed") < 0.1
    assert proxies.stats()["n1->n2"]["delayed"] >= 1
    with pytest.raises(ValueError, match="byte streams"):
        proxies.set_conditions("f", {("n1", "n2"): LinkConditions(loss=0.1, unit="message")})


def test_a_delayed_request_is_delivered_before_the_close(
    cluster: tuple[HttpPeerProxies, dict[str, Member]],
) -> None:
    proxies, members = cluster
    proxies.set_conditions("f", {("n1", "n2"): LinkConditions(delay_ms=200, unit="byte")})
    req = stream_request(proxies, "n1", "n2")
    with dial(proxies, "n2") as s:
        s.sendall(req + b"then close")
    assert eventually(lambda: members["n2"].got() == req + b"then close")
