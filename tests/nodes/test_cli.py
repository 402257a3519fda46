"""`python -m nodes` flags and data directories: every mistake is one line and a non-zero exit."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nodes.bugs import ALL_BUGS
from tests.support.raftkv_cluster import REPO, Cluster, free_ports


def run(args: list[str], timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nodes", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def base(tmp: Path, data: Path | None = None) -> list[str]:
    p, c, a = free_ports(3)
    return [
        "--id", "n1", "--data-dir", str(data or tmp / "d"),
        "--listen", f"127.0.0.1:{p}", "--client", f"127.0.0.1:{c}", "--admin", f"127.0.0.1:{a}",
        "--peers", f"n1=127.0.0.1:{p}",
    ]


def test_help_documents_every_flag() -> None:
    out = run(["--help"]).stdout
    for flag in ("--id", "--data-dir", "--listen", "--client", "--admin", "--peers", "--join",
                 "--election-tick", "--heartbeat-tick", "--tick-interval-ms", "--pre-vote",
                 "--no-pre-vote", "--check-quorum", "--no-check-quorum", "--read-mode", "--bug",
                 "--events", "--log-level", "--token-file", "--drop-removed-peers",
                 "--no-drop-removed-peers"):
        assert flag in out, flag
    for bug in ALL_BUGS:
        assert bug in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--id", "node1"], "--id: node names are n1, n2"),
        (["--listen", "nowhere"], "--listen: expected HOST:PORT"),
        (["--peers", "n1=127.0.0.1"], "--peers n1: expected HOST:PORT"),
        (["--peers", "n2=127.0.0.1:9"], "does not list this node n1"),
        (["--bug", "no-such-bug"], "unknown bug 'no-such-bug'"),
        (["--read-mode", "psychic"], "invalid choice"),
        (["--election-tick", "1"], "--election-tick must be greater"),
        (["--frobnicate"], "unrecognized arguments"),
        (["--read-mode", "lease", "--no-check-quorum"], "lease needs --check-quorum"),
    ],
)
def test_bad_flag_is_one_line_error(tmp_path: Path, change: list[str], message: str) -> None:
    args = base(tmp_path)
    flag = change[0]
    if flag in args and len(change) == 2:
        args[args.index(flag) + 1] = change[1]
    else:
        args += change
    p = run(args)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    p = run(base(tmp_path, data=f))
    assert p.returncode != 0
    assert p.stderr.strip().count("\n") == 0 and "--data-dir" in p.stderr


def test_corrupt_wal_refuses_to_start(tmp_path: Path) -> None:
    c = Cluster(tmp_path, size=1, spare=0)
    try:
        c.start("n1")
        lead = c.wait_leader(["n1"])
        with c.client(lead) as kc:
            for i in range(5):
                assert kc.put(f"k{i}", i).status == "ok"
        c.kill("n1")
    finally:
        c.close()
    seg = sorted((c.members["n1"].data_dir / "wal").glob("wal-*.log"))[-1]
    data = bytearray(seg.read_bytes())
    data[40] ^= 0xFF  # inside the first records, well before the tail
    seg.write_bytes(bytes(data))
    p = run(c.argv("n1")[3:])
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "wal corrupt" in lines[0], p.stderr
    # the event log says why, under the boot number the refused start would have had
    last = c.events("n1")[-1]
    assert last["type"] == "refuse" and last["boot"] == 2 and "checksum mismatch" in last["reason"]
    assert sum(e["type"] == "boot" for e in c.events("n1")) == 1


def test_torn_tail_is_truncated_and_node_serves(tmp_path: Path) -> None:
    c = Cluster(tmp_path, size=1, spare=0)
    try:
        c.start("n1")
        c.wait_leader(["n1"])
        with c.client("n1") as kc:
            for i in range(5):
                assert kc.put(f"k{i}", i).status == "ok"
        c.kill("n1")
        seg = sorted((c.members["n1"].data_dir / "wal").glob("wal-*.log"))[-1]
        with open(seg, "ab") as f:
            f.write(b"\x30\x00\x00\x00\x01\x02")  # half a header: a crash mid-append
        c.start("n1")
        c.wait_leader(["n1"])
        with c.client("n1") as kc:
            assert kc.get("k4").value == 4
        assert "torn record" in (tmp_path / "n1.log").read_text()
    finally:
        c.close()


def test_second_process_on_same_data_dir_refused(tmp_path: Path) -> None:
    c = Cluster(tmp_path, size=1, spare=0)
    try:
        c.start("n1")
        c.wait_leader(["n1"])
        p, cl, a = free_ports(3)
        argv = c.argv("n1")[3:]
        for flag, port in (("--listen", p), ("--client", cl), ("--admin", a)):
            argv[argv.index(flag) + 1] = f"127.0.0.1:{port}"
        r = run(argv)
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "in use by another raftkv process" in lines[0], r.stderr
    finally:
        c.close()


@pytest.mark.parametrize("flag", ["--listen", "--client", "--admin"])
def test_address_in_use_is_one_line_error(tmp_path: Path, flag: str) -> None:
    busy = socket.create_server(("127.0.0.1", 0))
    try:
        args = base(tmp_path)
        args[args.index(flag) + 1] = f"127.0.0.1:{busy.getsockname()[1]}"
        p = run(args)
        assert p.returncode != 0
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and flag in lines[0] and "in use" in lines[0], p.stderr
    finally:
        busy.close()


@pytest.mark.parametrize("damage", ["wal-deleted", "wal-emptied", "zero-tail", "crc-bad-last"])
def test_damaged_wal_on_restart(tmp_path: Path, damage: str) -> None:
    """issue 20, item 6: what the node does with each kind of damage to its own WAL."""
    c = Cluster(tmp_path, size=1, spare=0)
    try:
        c.start("n1")
        c.wait_leader(["n1"])
        with c.client("n1") as kc:
            for i in range(5):
                assert kc.put(f"k{i}", i).status == "ok"
        c.admin("n1").compact()  # a snapshot beside the WAL
        with c.client("n1") as kc:
            assert kc.put("after", 1).status == "ok"
        c.kill("n1")
    finally:
        c.close()
    segs = sorted((c.members["n1"].data_dir / "wal").glob("wal-*.log"))
    if damage == "wal-deleted":
        for s in segs:
            s.unlink()
    elif damage == "wal-emptied":
        for s in segs:
            s.write_bytes(b"")
    elif damage == "zero-tail":
        with open(segs[-1], "ab") as f:
            f.write(bytes(4096))  # preallocated space after the last record
    else:
        data = bytearray(segs[-1].read_bytes())
        data[-2] ^= 0x01
        segs[-1].write_bytes(bytes(data))
    p = run(c.argv("n1")[3:], timeout=6) if damage != "zero-tail" else None
    if p is not None:
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, p.stderr
        want = "not a torn write" if damage == "crc-bad-last" else "acknowledged entries are lost"
        assert want in lines[0]
        return
    c2 = Cluster(tmp_path / "again", size=1, spare=0)
    c2.members["n1"] = c.members["n1"]
    try:
        c2.start("n1")
        c2.wait_leader(["n1"])
        with c2.client("n1") as kc:
            assert kc.get("after").value == 1
        assert "zero-filled tail" in (tmp_path / "again" / "n1.log").read_text()
    finally:
        c2.close()
