"""Benchmark: a 3-node raftkv cluster vs a 3-node etcd 3.4 cluster on loopback.

Same closed-loop load generator for both: C concurrent clients (threads, one connection
each, spread over the three nodes), a write-heavy (90% put) and a read-heavy (90%
linearizable get) mix over 1000 keys. Reports ops/s, p50/p99 latency and fsyncs per
acknowledged write (raftkv: the WAL's counter in /status; etcd: its
etcd_disk_wal_fsync_duration_seconds_count metric), summed over the three nodes.

    .venv/bin/python bench/raftkv_bench.py [--seconds 5] [--clients 1,4,16,64] [--no-etcd]
                                           [--fsync-probe]

Prints a Markdown table (for docs/benchmarks.md). Every process started is killed at exit.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "nodes"))

from raftkv_cluster import Cluster, free_ports  # noqa: E402

from nodes.client import KVClient  # noqa: E402

KEYS = 1000
ETCD = "/usr/bin/etcd"


@dataclass
class Result:
    system: str
    mix: str
    clients: int
    ops: int = 0
    writes_ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    lat_ms: list[float] = field(default_factory=list)
    fsyncs: int = 0

    def row(self) -> str:
        lat = sorted(self.lat_ms) or [0.0]
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        per_write = self.fsyncs / self.writes_ok if self.writes_ok else 0.0
        return (
            f"| {self.system} | {self.mix} | {self.clients} | {self.ops / self.seconds:.0f} | "
            f"{p50:.1f} | {p99:.1f} | {per_write:.2f} | {self.errors} |"
        )


# An operation returns True if it succeeded; it raises or returns False otherwise.
Op = Callable[[str, bool], bool]


def run_load(make_op: Callable[[int], tuple[Op, Callable[[], None]]], clients: int, seconds: float,
             write_ratio: float, res: Result) -> None:
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        op, close = make_op(i)
        rnd = random.Random(i)
        lat: list[float] = []
        ops = writes = errors = 0
        try:
            while time.monotonic() < stop:
                key = f"k{rnd.randrange(KEYS)}"
                is_write = rnd.random() < write_ratio
                t0 = time.perf_counter()
                try:
                    ok = op(key, is_write)
                except Exception:
                    ok = False
                dt = (time.perf_counter() - t0) * 1000
                if ok:
                    ops += 1
                    writes += is_write
                    lat.append(dt)
                else:
                    errors += 1
        finally:
            close()
        with lock:
            res.ops += ops
            res.writes_ok += writes
            res.errors += errors
            res.lat_ms.extend(lat)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.seconds = time.monotonic() - t0


# ---- raftkv ----

def raftkv_fsyncs(c: Cluster) -> int:
    total = 0
    for n in c.initial:
        st = c.status(n)
        total += int(st["fsyncs"]) if st else 0
    return total


def bench_raftkv(root: Path, seconds: float, levels: list[int], mixes: dict[str, float]) -> list[Result]:
    c = Cluster(root / "raftkv", spare=0)
    out = []
    try:
        c.start_all()
        # 1-client cells talk to n1 only: whether n1 leads (no forwarding) shifts them a lot
        print(f"raftkv leader at start: {c.wait_leader()}", file=sys.stderr, flush=True)
        names = c.initial

        def make_op(i: int) -> tuple[Op, Callable[[], None]]:
            kc = KVClient(("127.0.0.1", c.members[names[i % 3]].client), timeout=5.0)

            def op(key: str, write: bool) -> bool:
                r = kc.put(key, 1) if write else kc.get(key)
                return r.status == "ok"

            return op, kc.close

        for mix, ratio in mixes.items():
            for n in levels:
                res = Result("raftkv", mix, n)
                before = raftkv_fsyncs(c)
                run_load(make_op, n, seconds, ratio, res)
                res.fsyncs = raftkv_fsyncs(c) - before
                print(res.row(), flush=True)
                out.append(res)
    finally:
        c.close()
    return out


# ---- etcd ----

@dataclass
class Etcd:
    root: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    clients: list[int] = field(default_factory=list)

    def start(self) -> None:
        ports = free_ports(6)
        peers = ports[:3]
        self.clients = ports[3:]
        cluster = ",".join(f"e{i}=http://127.0.0.1:{peers[i]}" for i in range(3))
        for i in range(3):
            d = self.root / f"e{i}"
            d.mkdir(parents=True)
            log = open(self.root / f"e{i}.log", "wb")
            self.procs.append(subprocess.Popen(
                [ETCD, "--name", f"e{i}", "--data-dir", str(d),
                 "--listen-peer-urls", f"http://127.0.0.1:{peers[i]}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peers[i]}",
                 "--listen-client-urls", f"http://127.0.0.1:{self.clients[i]}",
                 "--advertise-client-urls", f"http://127.0.0.1:{self.clients[i]}",
                 "--initial-cluster", cluster, "--initial-cluster-state", "new",
                 "--initial-cluster-token", "faultline-bench"],
                stdout=log, stderr=log, start_new_session=True))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.put(0, "warm", "up"):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("etcd cluster did not come up within 30 s")

    def put(self, i: int, key: str, value: str) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.clients[i], timeout=5)
        try:
            return _etcd_call(conn, "/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        finally:
            conn.close()

    def fsyncs(self) -> int:
        total = 0
        for port in self.clients:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode()
            finally:
                conn.close()
            m = re.search(r"^etcd_disk_wal_fsync_duration_seconds_count (\d+)", text, re.M)
            total += int(m.group(1)) if m else 0
        return total

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _etcd_call(conn: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> bool:
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status == 200


def bench_etcd(root: Path, seconds: float, levels: list[int], mixes: dict[str, float]) -> list[Result]:
    e = Etcd(root / "etcd")
    out = []
    try:
        e.start()

        def make_op(i: int) -> tuple[Op, Callable[[], None]]:
            conn = http.client.HTTPConnection("127.0.0.1", e.clients[i % 3], timeout=5)

            def op(key: str, write: bool) -> bool:
                if write:
                    return _etcd_call(conn, "/v3/kv/put", {"key": _b64(key), "value": _b64("1")})
                return _etcd_call(conn, "/v3/kv/range", {"key": _b64(key)})

            return op, conn.close

        for mix, ratio in mixes.items():
            for n in levels:
                res = Result("etcd 3.4", mix, n)
                before = e.fsyncs()
                run_load(make_op, n, seconds, ratio, res)
                res.fsyncs = e.fsyncs() - before
                print(res.row(), flush=True)
                out.append(res)
    finally:
        e.stop()
    return out


# ---- disk ----

def _pct(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {xs[len(xs) // 2] * 1e3:.2f} ms, p99 {xs[int(len(xs) * 0.99)] * 1e3:.2f} ms"


def fsync_probe(root: Path, rounds: int = 300) -> str:
    """Can two fsyncs of different files on this disk overlap? (Three local nodes share it.)

    Times a 200-byte append + fsync alone, two in sequence, and two from two threads at once;
    if "at once" is no faster than "in sequence", a leader fsyncing in parallel with its
    followers cannot gain here.
    """
    paths = [root / "fsync-a", root / "fsync-b"]
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) for p in paths]
    buf = b"x" * 200

    def one(fd: int) -> None:
        os.write(fd, buf)
        os.fsync(fd)

    single: list[float] = []
    seq: list[float] = []
    both: list[float] = []
    try:
        for _ in range(rounds):
            t = time.perf_counter()
            one(fds[0])
            single.append(time.perf_counter() - t)
            t = time.perf_counter()
            one(fds[0])
            one(fds[1])
            seq.append(time.perf_counter() - t)
            th = threading.Thread(target=one, args=(fds[1],))
            t = time.perf_counter()
            th.start()
            one(fds[0])
            th.join()
            both.append(time.perf_counter() - t)
    finally:
        for fd in fds:
            os.close(fd)
    return f"fsync one: {_pct(single)}; two in sequence: {_pct(seq)}; two at once: {_pct(both)}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--clients", default="1,4,16,64")
    p.add_argument("--no-etcd", action="store_true")
    p.add_argument("--fsync-probe", action="store_true",
                   help="first time fsyncs alone / in sequence / at once (on stderr)")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.clients.split(",")]
    mixes = {"write-heavy": 0.9, "read-heavy": 0.1}
    root = Path(tempfile.mkdtemp(prefix="raftkv-bench-"))
    print("| system | mix | clients | ops/s | p50 ms | p99 ms | fsyncs/write | errors |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        if args.fsync_probe:
            print(fsync_probe(root), file=sys.stderr, flush=True)
        bench_raftkv(root, args.seconds, levels, mixes)
        if not args.no_etcd:
            if Path(ETCD).exists():
                bench_etcd(root, args.seconds, levels, mixes)
            else:
                print(f"(etcd skipped: {ETCD} not installed)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
