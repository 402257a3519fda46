"""Out of file descriptors (issue 20, item 4): accept() failing with EMFILE must not make the
node spin and flood its log; it backs off, keeps serving its open connections, and accepts
again once descriptors are free."""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path

from nodes.poller import Acceptor, Poller
from tests.support.raftkv_cluster import Cluster


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks


def _flood(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))  # the kernel completes it; the node cannot accept
        socks.append(s)
    return socks


def test_emfile_backs_off_keeps_serving_and_recovers(tmp_path: Path) -> None:
    c = Cluster(tmp_path, size=1, spare=0)
    try:
        c.start("n1", max_fds=64)
        c.wait_leader(["n1"])
        m = c.members["n1"]
        assert m.proc is not None and m.log_path is not None
        kept = c.client("n1")
        assert kept.put("before", 1).status == "ok"
        flood = _flood(m.client, 100) + _flood(m.admin, 40) + _flood(m.peer, 40)
        try:
            time.sleep(1.0)  # descriptors run out; let the storm begin
            lines0 = len(m.log_path.read_text().splitlines())
            cpu0 = _cpu_seconds(m.proc.pid)
            t0 = time.monotonic()
            for i in range(10):  # an open connection is still served throughout
                assert kept.put(f"during{i}", i).status == "ok"
            time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
            cpu = _cpu_seconds(m.proc.pid) - cpu0
            wall = time.monotonic() - t0
            lines = len(m.log_path.read_text().splitlines()) - lines0
            log = m.log_path.read_text()
            assert "out of file descriptors" in log or "Too many open files" in log  # and said so
            assert lines < 20, f"{lines} log lines in {wall:.1f}s"
            assert cpu < 0.5 * wall, f"{cpu:.2f}s of CPU in {wall:.1f}s: the loop spins"
        finally:
            for s in flood:
                s.close()
        time.sleep(1.5)  # the longest back-off
        with c.client("n1") as fresh:
            assert fresh.get("during9").value == 9
        assert c.status("n1") is not None
        assert m.proc.poll() is None
        kept.close()
    finally:
        c.close()


class _Exhausted:
    """A listener whose accept() fails like a process out of descriptors, then recovers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def accept(self) -> tuple[socket.socket, object]:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        raise BlockingIOError


def test_acceptor_pauses_with_exponential_backoff_and_resets() -> None:
    pauses: list[float] = []
    acc = Acceptor("test", lambda conn: None)
    srv = _Exhausted(failures=8)
    for _ in range(8):
        acc.accept(srv, pauses.append)  # type: ignore[arg-type]
    assert srv.calls == 8  # one accept per wake-up: no spinning on a listener still readable
    assert pauses == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    acc.accept(srv, pauses.append)  # type: ignore[arg-type]
    assert len(pauses) == 8


def test_poller_resumes_a_paused_listener() -> None:
    p = Poller()
    a, b = socket.socketpair()
    hits: list[int] = []
    try:
        p.register(a, lambda: hits.append(len(a.recv(16))))
        b.send(b"x")
        p.pause(a, 0.2)
        t0 = time.monotonic()
        p.wait(1.0)  # returns when the pause ends, without a read
        assert hits == [] and 0.15 < time.monotonic() - t0 < 0.6
        p.wait(1.0)
        assert hits == [1]
    finally:
        p.close()
        a.close()
        b.close()
