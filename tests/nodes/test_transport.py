"""Peer transport: frames arrive in order, batches, reconnects, garbage closes the link."""

from __future__ import annotations

import socket
import threading
import time

from nodes.transport import Transport, frame, hello_frame
from tests.support.raftkv_cluster import free_ports


class Sink:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.senders: list[int | None] = []
        self.unreachable: list[int] = []
        self.snaps: list[tuple[int, bool]] = []
        self.cv = threading.Condition()

    def on_frame(self, b: bytes, sender: int | None = None) -> None:
        with self.cv:
            self.frames.append(b)
            self.senders.append(sender)
            self.cv.notify_all()

    def wait(self, n: int, timeout: float = 5.0) -> list[bytes]:
        with self.cv:
            self.cv.wait_for(lambda: len(self.frames) >= n, timeout)
            return list(self.frames)


def make(
    port: int, peers: dict[int, tuple[str, int]], sink: Sink, local_id: int, token: bytes | None = None
) -> Transport:
    t = Transport(
        ("127.0.0.1", port), peers, sink.on_frame,
        sink.unreachable.append, lambda p, ok: sink.snaps.append((p, ok)),
        local_id=local_id, token=token,
    )
    t.start()
    return t


def test_frames_flow_in_order_and_snapshot_reported() -> None:
    pa, pb = free_ports(2)
    sa, sb = Sink(), Sink()
    a = make(pa, {2: ("127.0.0.1", pb)}, sa, 1)
    b = make(pb, {1: ("127.0.0.1", pa)}, sb, 2)
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
    a = make(pa, {2: ("127.0.0.1", pb)}, sa, 1)
    try:
        a.send(2, b"lost", snapshot=True)
        deadline = time.monotonic() + 5
        while not sa.unreachable and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sa.unreachable[0] == 2 and (2, False) in sa.snaps
        b = make(pb, {}, sb, 2)
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
    b = make(pb, {}, sb, 2)
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
    a = make(pa, {2: srv.getsockname()}, sa, 1)
    try:
        a.send(2, b"one")
        conn, _ = srv.accept()
        conn.settimeout(5)
        first = b""
        while not first.endswith(b"one"):
            more = conn.recv(256)
            assert more
            first += more
        conn.close()
        time.sleep(0.2)  # the FIN has arrived; the sender has not noticed yet
        a.send(2, b"two")
        conn2, _ = srv.accept()
        conn2.settimeout(5)
        hello = hello_frame(None, 1, 2)
        got = b""
        while len(got) < len(hello) + len(frame(b"two")):
            got += conn2.recv(256)
        assert got == hello + frame(b"two")  # every connection starts with its hello
        conn2.close()
        assert sa.unreachable == []
    finally:
        a.stop()
        srv.close()


def test_batches_and_single_sends_keep_their_order() -> None:
    pa, pb = free_ports(2)
    sa, sb = Sink(), Sink()
    a = make(pa, {2: ("127.0.0.1", pb)}, sa, 1)
    b = make(pb, {1: ("127.0.0.1", pa)}, sb, 2)
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


def test_links_with_the_same_token_name_their_sender_and_others_are_refused() -> None:
    pa, pb, pc = free_ports(3)
    sa, sb, sc = Sink(), Sink(), Sink()
    a = make(pa, {2: ("127.0.0.1", pb)}, sa, 1, token=b"tok")
    b = make(pb, {}, sb, 2, token=b"tok")
    c = make(pc, {2: ("127.0.0.1", pb)}, sc, 3, token=b"other")
    try:
        a.send(2, b"from-a")
        c.send(2, b"from-c")
        assert sb.wait(1) == [b"from-a"]
        assert sb.senders == [1]
        time.sleep(0.3)
        assert sb.frames == [b"from-a"]  # c's link was refused at its hello
    finally:
        for t in (a, b, c):
            t.stop()
