"""Benchmark: a 3-node raftkv cluster vs a 3-node etcd 3.4 cluster on loopback.

Same closed-loop load generator for both: C concurrent clients (threads, one connection
each, spread over the three nodes; with --procs P the threads are spread over P forked
processes), a write-heavy (90% put) and a read-heavy (90%
linearizable get) mix over 1000 keys. Reports ops/s, p50/p99 latency and fsyncs per
acknowledged write (raftkv: the WAL's counter in /status; etcd: its
etcd_disk_wal_fsync_duration_seconds_count metric), summed over the three nodes, and the CPU
time per completed operation of the three server processes together and of the load
generator (from /proc/<pid>/stat and os.times()). On stderr, per cell: the load average
and the CPU pressure (share of the wall time some task waited for a CPU, /proc/pressure/cpu):
the machine is shared, and these say how much CPU the cell could get.

    .venv/bin/python bench/raftkv_bench.py [--seconds 5] [--clients 1,4,16,64] [--procs 4]
                                           [--mixes write-heavy,read-heavy] [--no-etcd] [--no-raftkv]
                                           [--fsync-probe] [--faketime] [--ab ROUNDS]

--faketime runs raftkv as a clock fault runs it (libfaketime with the monotonic clock faked
and the clock agent, harness/providers/clock.py) with every clock left true: the cost of
being ready for clock faults. --ab ROUNDS alternates fresh raftkv clusters without and with
it, ROUNDS times each (the order flips every round, so a drifting machine load favours
neither), and ends with the median of each column per variant.

Prints a Markdown table (for docs/benchmarks.md). Every process started is killed at exit.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
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
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.providers.clock import LocalClocks, find_libfaketime  # noqa: E402
from nodes.client import KVClient  # noqa: E402
from tests.support.raftkv_cluster import Cluster, free_ports  # noqa: E402

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
    server_cpu: float = 0.0  # CPU seconds of the three server processes during the cell
    client_cpu: float = 0.0  # CPU seconds of this (load generator) process during the cell

    def row(self) -> str:
        lat = sorted(self.lat_ms) or [0.0]
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        per_write = self.fsyncs / self.writes_ok if self.writes_ok else 0.0
        ops = max(1, self.ops)
        return (
            f"| {self.system} | {self.mix} | {self.clients} | {self.ops / self.seconds:.0f} | "
            f"{p50:.1f} | {p99:.1f} | {per_write:.2f} | {self.server_cpu / ops * 1e3:.2f} | "
            f"{self.client_cpu / ops * 1e3:.2f} | {self.errors} |"
        )


def proc_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by the given processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def cpu_pressure() -> float | None:
    """Seconds some task waited for a CPU, machine-wide (None without PSI)."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.split("total=")[1]) / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cpu_self_and_children() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(make_op: MakeOp, clients: int, seconds: float, write_ratio: float, res: Result,
            pids: list[int], procs: int) -> None:
    """run_load plus the CPU accounting of the cell and its conditions (on stderr)."""
    c0, s0, psi0 = _cpu_self_and_children(), proc_cpu(pids), cpu_pressure()
    load0 = os.getloadavg()[0]
    if procs > 1:
        run_load_procs(make_op, clients, seconds, write_ratio, res, procs)
    else:
        run_load(make_op, clients, seconds, write_ratio, res)
    c1, s1, psi1 = _cpu_self_and_children(), proc_cpu(pids), cpu_pressure()
    res.server_cpu = s1 - s0
    res.client_cpu = c1 - c0
    psi = f"{(psi1 - psi0) / res.seconds:.0%}" if psi0 is not None and psi1 is not None else "n/a"
    print(f"  {res.system} {res.mix} {clients}: load {load0:.1f} -> {os.getloadavg()[0]:.1f}, "
          f"CPU pressure {psi}, server CPU {res.server_cpu / res.seconds:.2f} cores, "
          f"generator {res.client_cpu / res.seconds:.2f} cores", file=sys.stderr, flush=True)


# An operation returns True if it succeeded; it raises or returns False otherwise.
Op = Callable[[str, bool], bool]
MakeOp = Callable[[int], tuple[Op, Callable[[], None]]]


def _load_child(make_op: MakeOp, ids: list[int], seconds: float, write_ratio: float,
                conn: Connection) -> None:
    sub = Result("", "", len(ids))
    run_load(lambda j: make_op(ids[j]), len(ids), seconds, write_ratio, sub)
    body = {"ops": sub.ops, "writes_ok": sub.writes_ok, "errors": sub.errors,
            "seconds": sub.seconds, "lat_ms": sub.lat_ms}
    conn.send_bytes(json.dumps(body).encode())  # JSON, not pickle
    conn.close()


def run_load_procs(make_op: MakeOp, clients: int, seconds: float, write_ratio: float,
                   res: Result, procs: int) -> None:
    """run_load spread over several forked processes (client i in process i % procs), so
    the generator's own GIL is not shared by all clients."""
    ctx = multiprocessing.get_context("fork")
    children = []
    for k in range(min(procs, clients)):
        ids = list(range(k, clients, procs))
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_load_child, args=(make_op, ids, seconds, write_ratio, send))
        p.start()
        send.close()
        children.append((p, recv))
    for p, recv in children:
        try:
            body = json.loads(recv.recv_bytes())
        except EOFError:
            body = {"errors": 1}  # the child died: count it, do not hide it
        p.join(timeout=seconds + 30)
        res.ops += body.get("ops", 0)
        res.writes_ok += body.get("writes_ok", 0)
        res.errors += body.get("errors", 0)
        res.seconds = max(res.seconds, body.get("seconds", 0.0))
        res.lat_ms.extend(body.get("lat_ms", []))


def run_load(make_op: MakeOp, clients: int, seconds: float, write_ratio: float,
             res: Result) -> None:
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


def bench_raftkv(root: Path, seconds: float, levels: list[int], mixes: dict[str, float],
                 procs: int, faketime: bool = False) -> list[Result]:
    clocks = None
    if faketime:
        lib = find_libfaketime()
        if lib is None:
            raise SystemExit("--faketime: libfaketime is not installed (Debian package libfaketime)")
        clocks = LocalClocks(root / "clocks", lib)
        reason = clocks.probe()
        if reason is not None:
            raise SystemExit(f"--faketime: {reason}")
    c = Cluster(root, spare=0, clocks=clocks)
    if clocks is not None:
        for name in c.initial:
            clocks.init(name)
    system = "raftkv+faketime" if faketime else "raftkv"
    out = []
    try:
        c.start_all()
        # 1-client cells talk to n1 only: whether n1 leads (no forwarding) shifts them a lot
        print(f"raftkv leader at start: {c.wait_leader()}", file=sys.stderr, flush=True)
        names = c.initial
        pids = [m.proc.pid for m in c.members.values() if m.proc is not None]

        def make_op(i: int) -> tuple[Op, Callable[[], None]]:
            kc = KVClient(("127.0.0.1", c.members[names[i % 3]].client), timeout=5.0)

            def op(key: str, write: bool) -> bool:
                r = kc.put(key, 1) if write else kc.get(key)
                return r.status == "ok"

            return op, kc.close

        for mix, ratio in mixes.items():
            for n in levels:
                res = Result(system, mix, n)
                before = raftkv_fsyncs(c)
                measure(make_op, n, seconds, ratio, res, pids, procs)
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


def bench_etcd(root: Path, seconds: float, levels: list[int], mixes: dict[str, float],
               procs: int) -> list[Result]:
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
                measure(make_op, n, seconds, ratio, res, [p.pid for p in e.procs], procs)
                res.fsyncs = e.fsyncs() - before
                print(res.row(), flush=True)
                out.append(res)
    finally:
        e.stop()
    return out


# ---- faked clocks: A/B ----

def ab_rounds(root: Path, rounds: int, seconds: float, levels: list[int], mixes: dict[str, float],
              procs: int) -> None:
    runs: dict[bool, list[Result]] = {False: [], True: []}
    for r in range(rounds):
        for faked in (False, True) if r % 2 == 0 else (True, False):
            runs[faked] += bench_raftkv(root / f"raftkv-{r}-{int(faked)}", seconds, levels, mixes, procs, faked)
    print()
    print("| system | mix | clients | rounds | median ops/s | median p50 ms | median p99 ms "
          "| median server CPU ms/op |")
    print("|---|---|---|---|---|---|---|---|")
    for results in runs.values():
        cells: dict[tuple[str, int], list[Result]] = {}
        for res in results:
            cells.setdefault((res.mix, res.clients), []).append(res)
        for (mix, clients), rs in cells.items():
            ops = median([x.ops / x.seconds for x in rs])
            p50 = median([pct(x.lat_ms, 0.5) for x in rs])
            p99 = median([pct(x.lat_ms, 0.99) for x in rs])
            cpu = median([x.server_cpu / max(1, x.ops) * 1e3 for x in rs])
            print(f"| {rs[0].system} | {mix} | {clients} | {len(rs)} | {ops:.0f} | {p50:.1f} | {p99:.1f} "
                  f"| {cpu:.2f} |")


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def pct(lat: list[float], q: float) -> float:
    lat = sorted(lat) or [0.0]
    return lat[min(len(lat) - 1, int(len(lat) * q))]


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
    p.add_argument("--no-raftkv", action="store_true")
    p.add_argument("--mixes", default="write-heavy,read-heavy")
    p.add_argument("--procs", type=int, default=1,
                   help="load generator processes (clients spread over them; default 1)")
    p.add_argument("--fsync-probe", action="store_true",
                   help="first time fsyncs alone / in sequence / at once (on stderr)")
    p.add_argument("--faketime", action="store_true",
                   help="raftkv under libfaketime and the clock agent, clocks true")
    p.add_argument("--ab", type=int, default=0, metavar="ROUNDS",
                   help="alternate raftkv without/with --faketime ROUNDS times each, then medians")
    args = p.parse_args(argv)
    levels = [int(x) for x in args.clients.split(",")]
    all_mixes = {"write-heavy": 0.9, "read-heavy": 0.1}
    mixes = {m: all_mixes[m] for m in args.mixes.split(",")}
    root = Path(tempfile.mkdtemp(prefix="raftkv-bench-"))
    print("| system | mix | clients | ops/s | p50 ms | p99 ms | fsyncs/write "
          "| server CPU ms/op | generator CPU ms/op | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        if args.fsync_probe:
            print(fsync_probe(root), file=sys.stderr, flush=True)
        if args.ab:
            ab_rounds(root, args.ab, args.seconds, levels, mixes, args.procs)
        elif not args.no_raftkv:
            bench_raftkv(root / "raftkv", args.seconds, levels, mixes, args.procs, args.faketime)
        if not args.no_etcd:
            if Path(ETCD).exists():
                bench_etcd(root, args.seconds, levels, mixes, args.procs)
            else:
                print(f"(etcd skipped: {ETCD} not installed)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
