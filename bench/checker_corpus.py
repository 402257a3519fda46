"""Benchmark of the linearizability checker: the reference corpora, per file and in total,
porcupine's unpartitioned kv checks, a 100,000-op / 1,000-key synthetic history, and a
pathological history under a time limit (memory stays bounded, verdict "unknown").

Times are CPU seconds of this process (time.process_time) next to wall seconds: on a shared
machine wall time mostly measures the neighbours. Peak memory is the process's max RSS.
Usage: .venv/bin/python bench/checker_corpus.py [--skip-synthetic] [--all-files]
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from checker_synth import corrupt_a_read, synthetic_kv_history  # noqa: E402

from checkers.history import ops_from_records, read_history  # noqa: E402
from checkers.linear import check, make_model  # noqa: E402

CORPORA = ROOT / "tests" / "corpora"
# porcupine (Go) on this kind of machine, from issue 5
PORCUPINE = {
    "etcd total": 0.38, "etcd_002": 0.14, "etcd_007": 0.09, "etcd_057": 0.05, "etcd_099": 0.04,
    "c50-ok": 0.13, "c50-bad": 0.015, "c10 unpartitioned": 1.5, "knossos total": 0.1,
}


@dataclass
class Row:
    path: str
    group: str
    ops: int
    read_s: float
    cpu_s: float
    wall_s: float
    valid: Any
    expected: bool


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(model: str, ops: list[Any], **kw: Any) -> tuple[Any, float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    result = check(make_model(model), ops, **kw)
    return result, time.process_time() - c0, time.perf_counter() - w0


def corpus(all_files: bool) -> list[Row]:
    rows: list[Row] = []
    with (CORPORA / "expected.tsv").open(encoding="utf-8") as fh:
        for entry in csv.DictReader(fh, delimiter="\t"):
            path = entry["path"]
            c0 = time.process_time()
            ops = read_history(CORPORA / path, entry["format"])
            read_s = time.process_time() - c0
            result, cpu, wall = timed(entry["model"], ops, timeout=120)
            group = "etcd" if "jepsen/" in path else "kv" if "/kv/" in path else "knossos"
            rows.append(Row(path, group, len(ops), read_s, cpu, wall, result.valid,
                            entry["expected_linearizable"] == "true"))
    return rows


def report_corpus(rows: list[Row], all_files: bool) -> None:
    print("| file | ops | check CPU s | wall s | read CPU s | verdict | porcupine s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        name = Path(r.path).stem
        ref = PORCUPINE.get(name)
        if all_files or r.cpu_s > 0.005 or ref is not None or r.group == "kv":
            ok = "ok" if r.valid is r.expected else f"WRONG ({r.valid})"
            print(f"| {r.path} | {r.ops} | {r.cpu_s:.4f} | {r.wall_s:.4f} | {r.read_s:.4f} | "
                  f"{r.valid} {ok} | {'' if ref is None else ref} |")
    print()
    print("| group | files | verdicts right | check CPU s | wall s | read CPU s | slowest file CPU s | porcupine s |")
    print("|---|---|---|---|---|---|---|---|")
    for group, group_ref in (("etcd", "0.38"), ("kv", "0.13 + 0.015 + c01/c10 small"), ("knossos", "< 0.1")):
        g = [r for r in rows if r.group == group]
        print(f"| {group} | {len(g)} | {sum(r.valid is r.expected for r in g)} | "
              f"{sum(r.cpu_s for r in g):.3f} | {sum(r.wall_s for r in g):.3f} | "
              f"{sum(r.read_s for r in g):.3f} | {max(r.cpu_s for r in g):.3f} | {group_ref} |")
    print(f"| all | {len(rows)} | {sum(r.valid is r.expected for r in rows)} | "
          f"{sum(r.cpu_s for r in rows):.3f} | {sum(r.wall_s for r in rows):.3f} | "
          f"{sum(r.read_s for r in rows):.3f} | | |")
    print(f"\npeak RSS after the corpus: {rss_mb():.0f} MB\n")


def unpartitioned() -> None:
    print("| kv file checked as one map | ops | verdict | check CPU s | wall s | porcupine s |")
    print("|---|---|---|---|---|---|")
    for name in ("c01-ok", "c01-bad", "c10-ok", "c10-bad"):
        ops = read_history(CORPORA / "porcupine" / "kv" / f"{name}.txt", "porcupine-kv")
        result, cpu, wall = timed("porcupine-kv-map", ops, timeout=120)
        print(f"| {name} | {len(ops)} | {result.valid} | {cpu:.3f} | {wall:.3f} | "
              f"{'1.5' if name.startswith('c10') else ''} |")
    print()


def synthetic() -> None:
    records = synthetic_kv_history(100_000, 1_000, processes=20, seed=7)
    c0 = time.process_time()
    ops = ops_from_records(records)
    pair_s = time.process_time() - c0
    print("| synthetic kv history (100,000 ops, 1,000 keys, 20 clients, 2% crashed) | CPU s | wall s | verdict |")
    print("|---|---|---|---|")
    print(f"| pair records into ops | {pair_s:.2f} | | |")
    result, cpu, wall = timed("kv", ops, timeout=120)
    print(f"| check (valid) | {cpu:.2f} | {wall:.2f} | {result.valid} |")
    corrupt_a_read(records, seed=7)
    ops = ops_from_records(records)
    result, cpu, wall = timed("kv", ops, timeout=120)
    print(f"| check (one read corrupted, stop at first bad key) | {cpu:.2f} | {wall:.2f} | {result.valid} |")
    ops = ops_from_records(records)  # fresh ops: nothing cached from the run before
    result, cpu, wall = timed("kv", ops, timeout=120, stop_early=False)
    print(f"| check (one read corrupted, all keys) | {cpu:.2f} | {wall:.2f} | {result.valid} |")
    print(f"\npeak RSS after the synthetic history: {rss_mb():.0f} MB\n")


def pathological() -> None:
    # 24 fully concurrent writes (values repeat, so no zone shortcut), then reads of 3 and of
    # 4 after all of them returned: refuting it needs every subset of the writes
    recs: list[dict[str, Any]] = []
    for p in range(24):
        recs.append({"time": 0, "process": p, "type": "invoke", "f": "write", "value": p % 12})
    for p in range(24):
        recs.append({"time": 100 + p, "process": p, "type": "ok", "f": "write", "value": p % 12})
    for t, v in ((1000, 3), (1002, 4)):
        recs.append({"time": t, "process": 99, "type": "invoke", "f": "read", "value": None})
        recs.append({"time": t + 1, "process": 99, "type": "ok", "f": "read", "value": v})
    ops = ops_from_records(recs)
    print("| pathological: 24 concurrent writes, then reads of 3 and 4 | verdict | CPU s | wall s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for kw in ({"timeout": 10.0}, {"max_configs": 200_000}, {"max_configs": 1_000_000}):
        result, cpu, wall = timed("register", ops, **kw)
        print(f"| {kw} | {result.valid} ({result.partitions[0].reason}) | {cpu:.1f} | {wall:.1f} | "
              f"{rss_mb():.0f} |")
    print()


def crash_heavy() -> None:
    """Many crashed ops on few keys with few distinct values (the hard case for any
    Wing & Gong search), with one read changed to another value that some op did write."""
    print("| 10,000 ops, 10 keys, 10 clients, 5% crashed, one read changed | verdict | CPU s | wall s |")
    print("|---|---|---|---|")
    for seed in range(3):
        records = synthetic_kv_history(10_000, 10, processes=10, seed=seed, crash_rate=0.05)
        rng = random.Random(seed)
        reads = [r for r in records if r["type"] == "ok" and r["f"] == "read" and r["value"] is not None]
        victim = rng.choice(reads)
        victim["value"] = (victim["value"] + 1) % 10
        ops = ops_from_records(records)
        result, cpu, wall = timed("kv", ops, timeout=120)
        print(f"| seed {seed} | {result.valid} | {cpu:.2f} | {wall:.2f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--all-files", action="store_true", help="a row for every corpus file")
    parser.add_argument("--only-crash-heavy", action="store_true", help="just the crash-heavy table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
          f"{open('/proc/loadavg').read().split()[0]}\n")
    if args.only_crash_heavy:
        crash_heavy()
        return
    rows = corpus(args.all_files)
    report_corpus(rows, args.all_files)
    unpartitioned()
    pathological()
    if not args.skip_synthetic:
        synthetic()
    crash_heavy()


if __name__ == "__main__":
    main()
