"""Proxies forward real TCP, blackhole when cut (silence, not refusal) and recover on heal;
link conditions delay byte streams per direction, in order, or whole connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness.net.linkcond import LinkConditions
from harness.net.proxy import ProxyHub


class Echo:
    """A TCP echo server on loopback (stands in for a node's peer port)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()[:2]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c: socket.socket) -> None:
        with c:
            while True:
                try:
                    data = c.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                c.sendall(data)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def hub() -> Iterator[ProxyHub]:
    h = ProxyHub()
    yield h
    h.close()


@pytest.fixture
def echo() -> Iterator[Echo]:
    e = Echo()
    yield e
    e.close()


def roundtrip(addr: tuple[str, int], payload: bytes, timeout: float = 1.0) -> bytes:
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_forwards_both_ways(hub: ProxyHub, echo: Echo) -> None:
    addr = hub.add_link("n1", "n2", echo.addr)
    payload = bytes(range(256)) * 2000
    assert roundtrip(addr, payload) == payload


def test_cut_blackholes_and_heal_restores(hub: ProxyHub, echo: Echo) -> None:
    addr = hub.add_link("n1", "n2", echo.addr)
    other = hub.add_link("n2", "n1", echo.addr)
    live = socket.create_connection(addr, timeout=1.0)
    live.sendall(b"ping")
    assert live.recv(4) == b"ping"
    hub.set_cut({("n1", "n2")})
    assert hub.cut_links() == {("n1", "n2")}
    # an established connection goes silent: sent bytes vanish, nothing comes back
    live.sendall(b"lost")
    with pytest.raises(TimeoutError):
        live.settimeout(0.3)
        live.recv(4)
    # a new connection is accepted (no refusal) but nothing is forwarded
    with socket.create_connection(addr, timeout=1.0) as s:
        s.settimeout(0.3)
        s.sendall(b"hello")
        with pytest.raises(TimeoutError):
            s.recv(5)
    # the other direction is untouched
    assert roundtrip(other, b"fine") == b"fine"
    hub.set_cut(set())
    # connections that lived through the cut are closed; new ones work
    live.settimeout(1.0)
    assert live.recv(4) == b""
    live.close()
    assert roundtrip(addr, b"back") == b"back"


def test_dead_target_closes_the_dialer(hub: ProxyHub) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        dead = s.getsockname()[:2]
    addr = hub.add_link("n1", "n3", dead)
    with socket.create_connection(addr, timeout=1.0) as c:
        c.settimeout(1.0)
        assert c.recv(1) == b""


def test_unknown_link_is_refused(hub: ProxyHub) -> None:
    with pytest.raises(KeyError):
        hub.set_cut({("n1", "n9")})


# ---- link conditions on byte streams ----


def rtt(s: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds for `payload` to come back through an echo link."""
    t0 = time.monotonic()
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(4096)
        assert chunk, "connection closed"
        got += chunk
    assert got == payload
    return time.monotonic() - t0


def byte_delay(ms: float, **kw: float) -> LinkConditions:
    return LinkConditions(delay_ms=ms, unit="byte", **kw)


def test_delay_applies_per_direction_and_clears(hub: ProxyHub, echo: Echo) -> None:
    addr = hub.add_link("n1", "n2", echo.addr)
    hub.add_link("n2", "n1", echo.addr)
    with socket.create_connection(addr, timeout=3.0) as s:
        assert rtt(s) < 0.1
        hub.set_conditions("f1", {("n1", "n2"): byte_delay(150)})
        assert 0.15 <= rtt(s) < 0.15 + 0.25  # the request waits, the echo does not
        # the echo travels n2 -> n1 and meets that link's conditions
        hub.set_conditions("f2", {("n2", "n1"): byte_delay(100)})
        assert 0.25 <= rtt(s) < 0.25 + 0.25
        assert set(hub.conditions()) == {("n1", "n2"), ("n2", "n1")}
        assert hub.clear_conditions("f1") == [("n1", "n2")]
        assert 0.1 <= rtt(s) < 0.1 + 0.25
        assert hub.clear_conditions() == [("n2", "n1")]
        assert rtt(s) < 0.1
    assert hub.stats()["n1->n2"]["delayed"] >= 1


def test_jittered_stream_keeps_its_bytes_in_order(hub: ProxyHub, echo: Echo) -> None:
    addr = hub.add_link("n1", "n2", echo.addr)
    hub.set_conditions("f", {("n1", "n2"): byte_delay(30, jitter_ms=30)}, seed=5)
    sent = b""
    with socket.create_connection(addr, timeout=3.0) as s:
        for i in range(60):
            chunk = f"<{i}>".encode()
            s.sendall(chunk)
            sent += chunk
            time.sleep(0.003)  # separate chunks, each with its own draw
        got = b""
        while len(got) < len(sent):
            data = s.recv(4096)
            assert data
            got += data
    assert got == sent
    assert hub.stats()["n1->n2"]["overtaken"] == 0


def test_reorder_lags_whole_connections(hub: ProxyHub, echo: Echo) -> None:
    addr = hub.add_link("n1", "n2", echo.addr)
    hub.set_conditions("f", {("n1", "n2"): byte_delay(250, reorder=0.5)}, seed=2)
    lags = []
    for _ in range(8):
        with socket.create_connection(addr, timeout=3.0) as s:
            first = rtt(s)
            assert abs(rtt(s) - first) < 0.15  # one lag per connection
            lags.append(first)
    fast, slow = [x for x in lags if x < 0.15], [x for x in lags if x >= 0.25]
    assert fast and slow and len(fast) + len(slow) == len(lags), lags


def test_bytes_on_their_way_outlive_the_senders_close(hub: ProxyHub) -> None:
    got = bytearray()
    with socket.create_server(("127.0.0.1", 0)) as server:
        addr = hub.add_link("n1", "n2", server.getsockname()[:2])
        hub.set_conditions("f", {("n1", "n2"): byte_delay(200)})
        with socket.create_connection(addr, timeout=3.0) as s:
            s.sendall(b"last words")
        t0 = time.monotonic()
        conn, _ = server.accept()
        with conn:
            conn.settimeout(3.0)
            while chunk := conn.recv(4096):
                got += chunk
        waited = time.monotonic() - t0
    assert bytes(got) == b"last words"  # delivered, then the close
    assert waited >= 0.15


def test_conditions_on_unknown_links_are_refused(hub: ProxyHub, echo: Echo) -> None:
    hub.add_link("n1", "n2", echo.addr)
    with pytest.raises(KeyError):
        hub.set_conditions("f", {("n1", "n9"): byte_delay(10)})


def test_a_cut_applies_on_top_of_conditions_and_they_outlive_its_heal(hub: ProxyHub, echo: Echo) -> None:
    addr = hub.add_link("n1", "n2", echo.addr)
    hub.set_conditions("f", {("n1", "n2"): byte_delay(150)})
    hub.set_cut({("n1", "n2")})  # overlapping faults: a partition and a slow link
    with socket.create_connection(addr, timeout=3.0) as s:
        s.settimeout(0.5)
        s.sendall(b"lost")
        with pytest.raises(TimeoutError):
            s.recv(4)
    hub.set_cut(set())
    with socket.create_connection(addr, timeout=3.0) as s:
        assert 0.15 <= rtt(s) < 0.15 + 0.25
    assert hub.stats()["n1->n2"]["dropped"] >= 4
