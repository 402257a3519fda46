"""Benchmark: operations per second *through faultline* for raftkv, etcd 3.4 and NATS 2.9.

Each cell is a whole `faultline run` (a subprocess, as a user runs it) of the shipped local
config of that system (configs/local.yaml, etcd-local.yaml, nats.yaml) with the same load
for all three: the kv workload with the same op mix and keys, C client workers, no rate limit,
no faults, T seconds. Throughput is the `ok` client ops of the run's history over the load
phase; latency is invoke-to-completion of those ops. The systems alternate within a round so
that the machine's other work falls on all of them alike; on stderr each cell also prints the
load average before it (the machine is shared).

    .venv/bin/python bench/faultline_dbs.py [--rounds 3] [--seconds 15] [--concurrency 6]
                                            [--systems raftkv,etcd,nats]

Prints a Markdown table (for docs/benchmarks.md). Runs go to a temporary store, removed after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"raftkv": "local.yaml", "etcd": "etcd-local.yaml", "nats": "nats.yaml"}
MIX = {"keys": 8, "ops_per_key": 400, "read": 0.5, "write": 0.3, "cas": 0.15, "delete": 0.05, "timeout": 2.0}


def config(system: str, seconds: float, concurrency: int, out: Path) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / CONFIGS[system]).read_text())
    cfg.update(name=f"bench-{system}", workload="kv", workload_opts=dict(MIX), time_limit=seconds,
               warmup=2, rate=0, concurrency=concurrency, recovery_timeout=30)
    cfg["nemesis"] = {"faults": []}
    path = out / f"{system}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cell(system: str, cfg: Path, store: Path, seed: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    argv = [sys.executable, "-m", "harness", "run", str(cfg), "--store", str(store), "--seed", str(seed)]
    p = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    run_dir = (store / "latest").resolve()
    test = yaml.safe_load((run_dir / "test.yaml").read_text())
    invoked: dict[Any, int] = {}
    lat: list[float] = []
    ok = 0
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        op = json.loads(line)
        proc = op.get("process")
        if proc == "nemesis" or (isinstance(proc, int) and proc >= 1_000_000):
            continue  # faults and final reads are not load
        if op["type"] == "invoke":
            invoked[proc] = op["time"]
        elif op["type"] == "ok" and proc in invoked:
            ok += 1
            lat.append((op["time"] - invoked.pop(proc)) / 1e6)
    lat.sort()
    res = {
        "system": system, "ops_s": ok / float(test["time_limit"]), "ok": ok,
        "p50": lat[len(lat) // 2] if lat else float("nan"),
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "exit": p.returncode, "load": load,
    }
    print(f"{system}: {res['ops_s']:.0f} ops/s p50 {res['p50']:.1f} ms p99 {res['p99']:.1f} ms "
          f"(exit {p.returncode}, load {load:.2f})", file=sys.stderr)
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--concurrency", type=int, default=6)
    ap.add_argument("--systems", default="raftkv,etcd,nats")
    ns = ap.parse_args()
    systems = ns.systems.split(",")
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    with tempfile.TemporaryDirectory(prefix="fl-bench-dbs-") as tmp:
        out = Path(tmp)
        cfgs = {s: config(s, ns.seconds, ns.concurrency, out) for s in systems}
        for r in range(ns.rounds):
            for s in systems:
                results[s].append(cell(s, cfgs[s], out / "store", 100 + r))
    print(f"| system | ops/s, median (min-max) of {ns.rounds} | p50 ms | p99 ms | load average before |")
    print("|---|---|---|---|---|")
    for s in systems:
        rs = results[s]
        ops = [x["ops_s"] for x in rs]
        loads = ", ".join(f"{x['load']:.1f}" for x in rs)
        print(f"| {s} | {statistics.median(ops):.0f} ({min(ops):.0f}-{max(ops):.0f}) | "
              f"{statistics.median(x['p50'] for x in rs):.1f} | {statistics.median(x['p99'] for x in rs):.1f} | "
              f"{loads} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
