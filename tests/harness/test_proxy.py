"""Proxies forward real TCP, blackhole when cut (silence, not refusal) and recover on heal."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

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
