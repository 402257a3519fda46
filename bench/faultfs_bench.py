"""Benchmark: what faultfs costs. Needs root and FUSE.

1. WAL-like appends: one writer appends R-byte records, each followed by fsync, to a file in
   a plain directory and to one in a faultfs mount (over a backing directory on the same
   disk), alternating, N records a cell.
2. raftkv: a 3-node cluster on loopback (tests/support/raftkv_cluster.py, default flags) with
   plain data directories, and one whose every node's data directory is its own faultfs
   mount (three faultfs processes, as on three hosts), alternating cells; the same closed-
   loop load as bench/raftkv_bench.py (C clients, 90% put / 10% linearizable get). Server
   CPU counts the three nodes (and, under faultfs, the three faultfs processes apart).

    sudo .venv/bin/python bench/faultfs_bench.py [--part wal,raftkv] [--rounds 3]
         [--seconds 5] [--clients 16] [--records 2000] [--record-bytes 200,4096]

Prints Markdown tables (for docs/benchmarks.md) and, on stderr, the load per cell. Every
process started is stopped and every mount unmounted at exit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from raftkv_bench import Op, Result, cpu_pressure, proc_cpu, raftkv_fsyncs, run_load  # noqa: E402

from nodes.client import KVClient  # noqa: E402
from tests.support.faultfs_mount import Mount  # noqa: E402
from tests.support.raftkv_cluster import Cluster  # noqa: E402


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1e3


@contextmanager
def mounted(root: Path) -> Iterator[Mount]:
    m = Mount(root).start()
    try:
        yield m
    finally:
        m.stop()


# ---- WAL-like appends ----

@dataclass
class WalCell:
    where: str
    record: int
    n: int
    seconds: float
    lat: list[float]

    def row(self) -> str:
        return (f"| {self.where} | {self.record} | {self.n / self.seconds:.0f} | "
                f"{_pct(self.lat, 0.5):.2f} | {_pct(self.lat, 0.99):.2f} |")


def wal_cell(directory: Path, where: str, record: int, n: int) -> WalCell:
    path = directory / "wal.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
    buf = b"r" * record
    lat = []
    t0 = time.perf_counter()
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, buf)
            os.fsync(fd)
            lat.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - t0
    os.unlink(path)
    return WalCell(where, record, n, elapsed, lat)


def bench_wal(root: Path, rounds: int, records: int, sizes: list[int]) -> None:
    plain = root / "plain"
    plain.mkdir()
    print("\n| where | record bytes | appends+fsync/s | p50 ms | p99 ms |\n|---|---|---|---|---|")
    with mounted(root / "ffs") as m:
        m.ctl("sync-all")
        for size in sizes:
            ratios = []
            for r in range(rounds):
                load = os.getloadavg()[0]
                a = wal_cell(plain, "plain", size, records)
                b = wal_cell(m.mnt, "faultfs", size, records)
                m.ctl("sync-all")
                ratios.append((b.n / b.seconds) / (a.n / a.seconds))
                print(a.row())
                print(b.row(), flush=True)
                print(f"  wal {size} B round {r + 1}: load {load:.1f}, faultfs/plain "
                      f"{ratios[-1]:.0%}", file=sys.stderr, flush=True)
            print(f"  wal {size} B: faultfs/plain median {statistics.median(ratios):.0%}",
                  file=sys.stderr)


# ---- raftkv ----

@dataclass
class KvCell:
    where: str
    res: Result
    node_cpu: float
    ffs_cpu: float

    def row(self) -> str:
        r = self.res
        lat = sorted(r.lat_ms) or [0.0]
        ops = max(1, r.ops)
        per_write = r.fsyncs / r.writes_ok if r.writes_ok else 0.0
        return (f"| {self.where} | {r.clients} | {r.ops / r.seconds:.0f} | {lat[len(lat) // 2]:.1f} | "
                f"{lat[min(len(lat) - 1, int(len(lat) * 0.99))]:.1f} | {per_write:.2f} | "
                f"{self.node_cpu / ops * 1e3:.2f} | {self.ffs_cpu / ops * 1e3:.2f} | {r.errors} |")


def kv_cell(root: Path, where: str, clients: int, seconds: float, faultfs: bool) -> KvCell:
    c = Cluster(root / "cluster", spare=0)
    with ExitStack() as stack:
        mounts: list[Mount] = []
        if faultfs:
            for name in c.initial:
                m = stack.enter_context(mounted(root / f"ffs-{name}"))
                # the node's data dir is the mount point itself
                c.members[name].data_dir = m.mnt
                mounts.append(m)
        stack.callback(c.close)
        c.start_all()
        c.wait_leader()
        names = c.initial

        def make_op(i: int) -> tuple[Op, Callable[[], None]]:
            kc = KVClient(("127.0.0.1", c.members[names[i % 3]].client), timeout=5.0)

            def op(key: str, write: bool) -> bool:
                r = kc.put(key, 1) if write else kc.get(key)
                return r.status == "ok"

            return op, kc.close

        run_load(make_op, clients, 1.0, 0.9, Result("warm", "", clients))  # warm-up
        node_pids = [m.proc.pid for m in c.members.values() if m.proc is not None]
        ffs_pids = [m.proc.pid for m in mounts if m.proc is not None]
        res = Result(where, "write-heavy", clients)
        f0, n0, x0, psi0 = raftkv_fsyncs(c), proc_cpu(node_pids), proc_cpu(ffs_pids), cpu_pressure()
        load0 = os.getloadavg()[0]
        run_load(make_op, clients, seconds, 0.9, res)
        res.fsyncs = raftkv_fsyncs(c) - f0
        cell = KvCell(where, res, proc_cpu(node_pids) - n0, proc_cpu(ffs_pids) - x0)
        psi1 = cpu_pressure()
        psi = f"{(psi1 - psi0) / res.seconds:.0%}" if psi0 is not None and psi1 is not None else "n/a"
        print(f"  raftkv {where} {clients}: load {load0:.1f} -> {os.getloadavg()[0]:.1f}, CPU "
              f"pressure {psi}, nodes {cell.node_cpu / res.seconds:.2f} cores, faultfs "
              f"{cell.ffs_cpu / res.seconds:.2f} cores", file=sys.stderr, flush=True)
        for m in mounts:
            st = m.ctl("status")
            print(f"    {m.mnt.parent.name}: {st['counters']}", file=sys.stderr)
    return cell


def bench_raftkv(root: Path, rounds: int, seconds: float, levels: list[int]) -> None:
    print("\n| data dirs | clients | ops/s | p50 ms | p99 ms | fsyncs/write | node CPU ms/op "
          "| faultfs CPU ms/op | errors |\n|---|---|---|---|---|---|---|---|---|")
    for clients in levels:
        ratios = []
        for r in range(rounds):
            cells = []
            for where, ffs in (("plain", False), ("faultfs", True)):
                with tempfile.TemporaryDirectory(dir=root) as d:
                    cells.append(kv_cell(Path(d), where, clients, seconds, ffs))
                print(cells[-1].row(), flush=True)
            a, b = (cell.res for cell in cells)
            ratios.append((b.ops / b.seconds) / (a.ops / a.seconds))
            print(f"  raftkv {clients} clients round {r + 1}: faultfs/plain {ratios[-1]:.0%}",
                  file=sys.stderr, flush=True)
        print(f"  raftkv {clients} clients: faultfs/plain median {statistics.median(ratios):.0%}",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", default="wal,raftkv")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--clients", default="16")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--record-bytes", default="200,4096")
    args = p.parse_args(argv)
    if os.geteuid() != 0 or not Path("/dev/fuse").exists():
        print("faultfs_bench: needs root and /dev/fuse", file=sys.stderr)
        return 1
    parts = args.part.split(",")
    with tempfile.TemporaryDirectory(prefix="faultfs-bench-") as d:
        root = Path(d)
        if "wal" in parts:
            bench_wal(root, args.rounds, args.records, [int(x) for x in args.record_bytes.split(",")])
        if "raftkv" in parts:
            bench_raftkv(root, args.rounds, args.seconds, [int(x) for x in args.clients.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
