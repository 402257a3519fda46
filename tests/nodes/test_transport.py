"""Peer transport: frames arrive in order, batches, reconnects, garbage closes the link."""

from __future__ import annotations

import socket
import threading
import time

from nodes.transport import Transport, frame
from tests.support.raftkv_cluster import free_ports


class Sink:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.unreachable: list[int] = []
        self.snaps: list[tuple[int, bool]] = []
        self.cv = threading.Condition()

    def on_frame(self, b: bytes) -> None:
        with self.cv:
            self.frames.append(b)
            self.cv.notify_all()

    def wait(self, n: int, timeout: float = 5.0) -> list[bytes]:
        with self.cv:
            self.cv.wait_for(lambda: len(self.frames) >= n, timeout)
            return list(self.frames)


def make(port: int, peers: dict[int, tuple[str, int]], sink: Sink) -> Transport:
    t = Transport(
        ("127.0.0.1", port), peers, sink.on_frame,
        sink.unreachable.append, lambda p, ok: sink.snaps.append((p, ok)),
    )
    t.start()
    return t


def test_frames_flow_in_order_and_snapshot_reported() -> None:
    pa, pb = free_ports(2)
    sa, sb = Sink(), Sink()
    a = make(pa, {2: ("127.0.0.1", pb)}, sa)
    b = make(pb, {1: ("127.0.0.1", pa)}, sb)
    try:
        for i in range(300):
            a.send(2, f"m{i}".encode(), snapshot=i == 299)
        got = sb.wait(300)
        assert got == [f"m{i}".encode() for i in range(300)]
        deadline = time.monotonic() + 5
        while not sa.snaps and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sa.snaps == [(2, True)]
    finally:
        a.stop()
        b.stop()


def test_unreachable_then_reconnect() -> None:
    pa, pb = free_ports(2)
    sa, sb = Sink(), Sink()
    a = make(pa, {2: ("127.0.0.1", pb)}, sa)
    try:
        a.send(2, b"lost", snapshot=True)
        deadline = time.monotonic() + 5
        while not sa.unreachable and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sa.unreachable[0] == 2 and (2, False) in sa.snaps
        b = make(pb, {}, sb)
        try:
            deadline = time.monotonic() + 5
            while not sb.frames and time.monotonic() < deadline:
                a.send(2, b"again")
                time.sleep(0.05)
            assert sb.frames and sb.frames[0] == b"again"
        finally:
            b.stop()
    finally:
        a.stop()


def test_corrupt_frame_closes_connection() -> None:
    (pb,) = free_ports(1)
    sb = Sink()
    b = make(pb, {}, sb)
    try:
        with socket.create_connection(("127.0.0.1", pb)) as s:
            good = frame(b"ok")
            bad = bytearray(frame(b"bad"))
            bad[-1] ^= 1
            s.sendall(good + bytes(bad) + frame(b"after"))
            s.settimeout(5)
            assert s.recv(1) == b""  # closed by the reader
        assert sb.wait(1) == [b"ok"]
    finally:
        b.stop()


def test_message_after_far_end_closed_is_not_lost() -> None:
    """A proxy healing a cut closes the link; the next single message must still arrive."""
    (pa,) = free_ports(1)
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(5)
    sa = Sink()
    a = make(pa, {2: srv.getsockname()}, sa)
    try:
        a.send(2, b"one")
        conn, _ = srv.accept()
        conn.settimeout(5)
        assert conn.recv(64).endswith(b"one")
        conn.close()
        time.sleep(0.2)  # the FIN has arrived; the sender has not noticed yet
        a.send(2, b"two")
        conn2, _ = srv.accept()
        conn2.settimeout(5)
        assert conn2.recv(64) == frame(b"two")
        conn2.close()
        assert sa.unreachable == []
    finally:
        a.stop()
        srv.close()


def test_batches_and_single_sends_keep_their_order() -> None:
    pa, pb = free_ports(2)
    sa, sb = Sink(), Sink()
    a = make(pa, {2: ("127.0.0.1", pb)}, sa)
    b = make(pb, {1: ("127.0.0.1", pa)}, sb)
    try:
        want = []
        for i in range(50):
            batch = [f"b{i}.{j}".encode() for j in range(i % 4)]
            a.send_batch(2, batch)
            a.send(2, f"s{i}".encode())
            want += batch + [f"s{i}".encode()]
        assert sb.wait(len(want)) == want
    finally:
        a.stop()
        b.stop()
