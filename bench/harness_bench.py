"""Benchmark: how fast the controller itself records operations, and its overhead per op.

1. `recording`: the real worker loop (`harness.run.runner.client_worker`), generator and
   HistoryWriter (flushed per line) driving a trivial in-process client that answers at once:
   completed ops/s the controller records. Goal: >= 20,000 ops/s.
2. `raftkv` (optional, --raftkv): a real 3-node raftkv cluster on local processes (local
   provider, proxies); per op, time spent in the controller (generator, history) versus the
   time in the client call, so the harness overhead per op is reported.

    .venv/bin/python bench/harness_bench.py [--seconds 3] [--workers 1,4,8] [--raftkv]

Prints a Markdown table for docs/benchmarks.md. Every process started is stopped at exit.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.run.config import validate  # noqa: E402
from harness.run.generator import ClientGenerator  # noqa: E402
from harness.run.history import HistoryWriter  # noqa: E402
from harness.run.runner import client_worker  # noqa: E402
from workloads import get as get_workload  # noqa: E402


class InstantClient:
    """Answers every op at once, as a register in memory would (the benchmark's trivial client)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def open(self, node: str) -> None:
        pass

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]:
        key = op.get("key", "r")
        if op["f"] == "read":
            return {"type": "ok", "value": self.state.get(key)}
        if op["f"] == "write":
            self.state[key] = op["value"]
        return {"type": "ok"}

    def close(self) -> None:
        pass


class InstantDB:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def client(self, test: Mapping[str, Any]) -> InstantClient:
        return InstantClient(self.state)


class TimedClient:
    """Wraps a real client and sums the time spent inside its calls."""

    def __init__(self, inner: Any, totals: dict[str, float]) -> None:
        self.inner = inner
        self.totals = totals

    def open(self, node: str) -> None:
        self.inner.open(node)

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]:
        t = time.perf_counter()
        try:
            return self.inner.invoke(op)
        finally:
            self.totals["client_s"] += time.perf_counter() - t

    def close(self) -> None:
        self.inner.close()


class TimedDB:
    def __init__(self, db: Any, totals: dict[str, float]) -> None:
        self.db = db
        self.totals = totals

    def client(self, test: Mapping[str, Any]) -> TimedClient:
        return TimedClient(self.db.client(test), self.totals)


def drive(
    db: Any, test: dict[str, Any], workers: int, seconds: float, path: Path
) -> tuple[int, float, float, float]:
    """Run `workers` client workers for `seconds`; (completed ops, wall s, summed worker s,
    CPU s of this process: on a shared machine ops per CPU-second is the fairer figure)."""
    history = HistoryWriter(path)
    gen = ClientGenerator(get_workload("kv").make(1, test["workload_opts"]), rate=0)
    gen.run_until(time.monotonic() + seconds)
    busy = [0.0] * workers

    def work(i: int) -> None:
        t = time.perf_counter()
        client_worker(i, workers, f"n{i % 3 + 1}", db, test, gen, history)
        busy[i] = time.perf_counter() - t

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    start = time.perf_counter()
    cpu = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    history.close()
    done = history.counts["ok"] + history.counts["fail"] + history.counts["info"]
    return done, wall, sum(busy), cpu


def bench_recording(workers_list: list[int], seconds: float) -> list[str]:
    test = validate({"rate": 0})
    rows = [
        "| workers | ops recorded | seconds | ops/s (wall) | controller CPU s | ops per CPU-second |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for w in workers_list:
            done, wall, _, cpu = drive(InstantDB(), test, w, seconds, Path(tmp) / f"h{w}.jsonl")
            rows.append(f"| {w} | {done} | {wall:.2f} | {done / wall:,.0f} | {cpu:.2f} | {done / cpu:,.0f} |")
    return rows


def bench_raftkv(workers_list: list[int], seconds: float) -> list[str]:
    from harness.db.raftkv import RaftkvDB
    from harness.providers.local import LocalProvider

    rows = [
        "| workers | ops | ops/s | mean op (ms) | in client call (ms) | controller per op (µs) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    test = validate({"rate": 0, "nemesis": {"faults": []}})
    with tempfile.TemporaryDirectory() as tmp:
        provider = LocalProvider(Path(tmp) / "work", clock=False)
        db = RaftkvDB(test)
        try:
            db.setup(provider, provider.setup(test["nodes"]), test)
            for w in workers_list:
                totals = {"client_s": 0.0}

                done, wall, busy, _ = drive(TimedDB(db, totals), test, w, seconds, Path(tmp) / f"r{w}.jsonl")
                per_op = busy / max(done, 1)
                in_client = totals["client_s"] / max(done, 1)
                rows.append(
                    f"| {w} | {done} | {done / wall:,.0f} | {per_op * 1e3:.2f} | {in_client * 1e3:.2f} "
                    f"| {(per_op - in_client) * 1e6:.0f} |"
                )
        finally:
            db.teardown()
            provider.teardown()
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--workers", default="1,4,8")
    p.add_argument("--raftkv", action="store_true", help="also measure against a real raftkv cluster")
    ns = p.parse_args()
    workers = [int(w) for w in ns.workers.split(",")]
    print("recording (trivial in-process client):\n")
    print("\n".join(bench_recording(workers, ns.seconds)))
    if ns.raftkv:
        print("\nraftkv, 3 local nodes, no faults:\n")
        print("\n".join(bench_raftkv(workers, ns.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
