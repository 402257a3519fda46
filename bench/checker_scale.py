"""Benchmark of the linearizability checker on long histories read from history.jsonl files,
as `faultline check FILE` and a run's analysis read them: read + check time and peak memory.

Histories (written once into --dir, reused when already there; bench/checker_synth.py):
- 1,000,000 ops over 1,000 keys, 50 clients, 2% crashed, seed 11 (a 10-minute soak at
  ~2,000 ops/s);
- 100,000 ops over 1,000 keys, 20 clients, seed 7 (the corpus benchmark's synthetic);
- the crash-heavy family: 10,000 ops on 10 keys, 10 clients, 5% crashed, one read changed to
  another value some op wrote (seeds 0..N-1);
- with --ten-million: 10,000,000 ops over 1,000 keys, 50 clients, seed 11 (~2 GB of jsonl).

Each measurement runs in a fresh Python process (peak RSS is that process's; a file above 64 MB
is read by forked worker processes, whose CPU seconds count in the read's). Times are wall
seconds with CPU seconds next to them; the machine is shared, so the load average is printed
with every row. The same files serve for the side-by-side with porcupine (--write-only).
Usage: .venv/bin/python bench/checker_scale.py [--dir DIR] [--repeat N] [--seeds N]
       [--ten-million] [--write-only]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from checker_synth import synthetic_kv_history, write_synthetic_jsonl  # noqa: E402


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def histories(out: Path, seeds: int, ten_million: bool) -> list[tuple[str, Path]]:
    out.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, Path]] = []

    def synth(name: str, n: int, keys: int, procs: int, seed: int) -> None:
        path = out / f"{name}.jsonl"
        if not path.exists():
            print(f"writing {path} ...", file=sys.stderr)
            tmp = path.with_suffix(".tmp")
            write_synthetic_jsonl(tmp, n, keys, procs, seed)
            tmp.replace(path)
        files.append((name, path))

    synth("kv-100k", 100_000, 1_000, 20, 7)
    synth("kv-1m", 1_000_000, 1_000, 50, 11)
    if ten_million:
        synth("kv-10m", 10_000_000, 1_000, 50, 11)
    for seed in range(seeds):
        path = out / f"crash-heavy-{seed}.jsonl"
        if not path.exists():
            records = synthetic_kv_history(10_000, 10, processes=10, seed=seed, crash_rate=0.05)
            rng = random.Random(seed)
            reads = [r for r in records if r["type"] == "ok" and r["f"] == "read" and r["value"] is not None]
            victim = rng.choice(reads)
            victim["value"] = (victim["value"] + 1) % 10
            path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        files.append((f"crash-heavy-{seed}", path))
    return files


def one(path: Path, timeout: float) -> dict[str, Any]:
    """Read and check one file in this process (what `faultline check` does)."""
    from checkers.history import read_table
    from checkers.linear import check, make_model

    def cpu() -> float:  # this process and its reader workers
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    w0, c0 = time.perf_counter(), cpu()
    table = read_table(path)
    w1, c1 = time.perf_counter(), cpu()
    result = check(make_model("kv"), table, timeout=timeout)
    w2, c2 = time.perf_counter(), cpu()
    return {
        "ops": len(table), "read_s": w1 - w0, "read_cpu": c1 - c0, "check_s": w2 - w1,
        "check_cpu": c2 - c1, "valid": result.valid, "partitions": len(result.partitions),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(path: Path, timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--one", str(path), "--timeout", str(timeout)],
        capture_output=True, text=True, check=True,
    )
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/faultline-checker-bench"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3, help="crash-heavy seeds 0..N-1")
    parser.add_argument("--ten-million", action="store_true")
    parser.add_argument("--write-only", action="store_true", help="write the histories and stop")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.timeout)))
        return
    files = histories(args.dir, args.seeds, args.ten_million)
    if args.write_only:
        for name, path in files:
            print(name, path)
        return
    print(f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPython "
          f"{sys.version.split()[0]}, load average {load()} at the start\n")
    print("| history | ops | read s (CPU) | check s (CPU) | read + check s | peak RSS MB | verdict | load |")
    print("|---|---|---|---|---|---|---|---|")
    for name, path in files:
        for _ in range(1 if name.startswith("crash") or name == "kv-10m" else args.repeat):
            r = measure(path, args.timeout)
            print(f"| {name} | {r['ops']:,} | {r['read_s']:.2f} ({r['read_cpu']:.2f}) | "
                  f"{r['check_s']:.2f} ({r['check_cpu']:.2f}) | {r['read_s'] + r['check_s']:.2f} | "
                  f"{r['rss_mb']:.0f} | {r['valid']} | {load()} |", flush=True)


if __name__ == "__main__":
    main()
