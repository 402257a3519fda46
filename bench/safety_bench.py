"""Benchmark of the raft-safety checker on a generated run of correct node events.

Default: a 10-minute, 5-node run at 1,000 writes/s (600,000 entries applied by every node,
about 3.3M events with commits, elections every 10 s and one restart per minute). Times
check() on events in memory, then from the events.jsonl files (read + check): the events
streamed as dicts through check() (check_run before the column path), and check_run() serial
(workers=1) and parallel (default workers); all must give the same result.
Usage: .venv/bin/python bench/safety_bench.py [--seconds 600]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checkers.safety import check, check_run, iter_node_events  # noqa: E402
from checkers.safety.events import events_files  # noqa: E402
from checkers.safety.parallel import default_workers  # noqa: E402

log = logging.getLogger("safety_bench")


def generate(nodes: int, seconds: int, rate: int, commit_every: int) -> dict[str, list[dict[str, Any]]]:
    """Correct events: a leader per 10-s term, everyone applying everything, restarts replayed."""
    names = [f"n{i + 1}" for i in range(nodes)]
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    boot = dict.fromkeys(names, 1)
    t0 = 1_700_000_000.0
    for n in names:
        out[n].append({"ts": t0, "node": n, "boot": 1, "type": "boot", "term": 0, "vote": None,
                       "commit": 0, "voters": names, "learners": [], "snapshot_index": 0})
    term, index, applied = 0, 0, dict.fromkeys(names, 0)
    entries: list[tuple[int, str]] = [(0, "")]  # index -> (term, digest)
    per_term = rate * 10
    total = rate * seconds
    while index < total:
        term += 1
        leader = names[term % nodes]
        ts = t0 + index / rate
        for n in names:
            ev = out[n]
            b = boot[n]
            if n == leader:
                ev.append({"ts": ts, "node": n, "boot": b, "type": "role", "role": "candidate", "term": term, "lead": None})
                ev.append({"ts": ts, "node": n, "boot": b, "type": "vote", "term": term, "for": n})
                ev.append({"ts": ts, "node": n, "boot": b, "type": "role", "role": "leader", "term": term, "lead": n})
            else:
                ev.append({"ts": ts, "node": n, "boot": b, "type": "vote", "term": term, "for": leader})
                ev.append({"ts": ts, "node": n, "boot": b, "type": "role", "role": "follower", "term": term, "lead": leader})
        last = min(total, index + per_term)
        for i in range(index + 1, last + 1):
            entries.append((term, hashlib.sha256(f"{term}:{i}".encode()).hexdigest()[:16]))
        for n in names:
            ev = out[n]
            b = boot[n]
            for i in range(applied[n] + 1, last + 1):
                ts = t0 + i / rate
                if i % commit_every == 0 or i == last:
                    ev.append({"ts": ts, "node": n, "boot": b, "type": "commit", "index": min(last, i + commit_every - 1), "term": term})
                et, dg = entries[i]
                ev.append({"ts": ts, "node": n, "boot": b, "type": "apply", "index": i, "term": et, "digest": dg, "kind": "normal"})
            applied[n] = last
        index = last
        # every 6th term a follower restarts: recovered from a snapshot 1,000 entries back
        if term % 6 == 0:
            n = names[(term + 1) % nodes]
            boot[n] += 1
            snap = max(0, index - rate)
            out[n].append({"ts": t0 + index / rate, "node": n, "boot": boot[n], "type": "boot", "term": term, "vote": leader,
                           "commit": index, "voters": names, "learners": [], "snapshot_index": snap})
            for i in range(snap + 1, index + 1):
                et, dg = entries[i]
                out[n].append({"ts": t0 + index / rate, "node": n, "boot": boot[n], "type": "apply", "index": i, "term": et, "digest": dg, "kind": "normal"})
    return out


def write_run(events: dict[str, list[dict[str, Any]]], run_dir: Path) -> int:
    size = 0
    for node, evs in events.items():
        d = run_dir / "nodes" / node
        d.mkdir(parents=True)
        with (d / "events.jsonl").open("w") as f:
            for ev in evs:
                line = json.dumps(ev, separators=(",", ":")) + "\n"
                size += len(line)
                f.write(line)
    return size


def timed(label: str, fn: Any) -> tuple[float, Any]:
    gc.collect()
    t, cpu = time.perf_counter(), time.process_time()
    r = fn()
    dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
    print(f"{label}: {dt:.2f} s wall, {dcpu:.2f} s CPU")
    return dt, r


def _comparable(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = result.to_json()
    doc["stats"] = {k: v for k, v in doc["stats"].items() if k != "check_seconds"}
    return doc


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--rate", type=int, default=1000, help="writes per second")
    ap.add_argument("--commit-every", type=int, default=10, help="applies per commit event")
    ap.add_argument("--streamed-only", action="store_true",
                    help="skip the in-memory run, to measure check_run's memory alone")
    args = ap.parse_args(argv)
    if args.streamed_only:
        with tempfile.TemporaryDirectory() as tmp:
            write_run(generate(args.nodes, args.seconds, args.rate, args.commit_every), Path(tmp))
            # A fresh process (VmHWM: ru_maxrss would carry the parent's peak over the fork).
            code = (
                "import sys, time; from pathlib import Path; "
                "from checkers.safety import check_run; "
                "t, c = time.perf_counter(), time.process_time(); r = check_run(Path(sys.argv[1])); "
                "print(f'check_run (read + check, default workers): {time.perf_counter() - t:.2f} s wall, '"
                "f'{time.process_time() - c:.2f} s CPU, valid {r.valid}, '"
                "f'peak RSS ' + [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')]"
                "[0].split(':')[1].strip())"
            )
            repo = Path(__file__).resolve().parent.parent
            return subprocess.run([sys.executable, "-c", code, tmp], cwd=repo, check=False).returncode
    events = generate(args.nodes, args.seconds, args.rate, args.commit_every)
    n = sum(len(e) for e in events.values())
    applies = sum(1 for evs in events.values() for e in evs if e["type"] == "apply")
    print(f"{args.nodes} nodes, {args.seconds} s at {args.rate} writes/s: "
          f"{n} events ({applies} applies)")
    _dt, result = timed("check (events in memory)", lambda: check(events))
    assert result.valid is True, result.details["violations"][:3]
    events.clear()
    with tempfile.TemporaryDirectory() as tmp:
        size = write_run(generate(args.nodes, args.seconds, args.rate, args.commit_every),
                         Path(tmp))
        print(f"events.jsonl total {size / 1e6:.0f} MB")
        run_dir = Path(tmp)
        files = events_files(run_dir)
        _dt, before = timed("events streamed as dicts + check (check_run before)",
                            lambda: check({n: iter_node_events(p) for n, p in files.items()}))
        _dt, serial = timed("check_run, column path, workers=1",
                            lambda: check_run(run_dir, workers=1))
        _dt, parallel = timed(f"check_run, column path, workers={default_workers(len(files))} "
                              "(default; CPU: this process only)", lambda: check_run(run_dir))
        assert before.valid is True
        assert _comparable(serial) == _comparable(before) == _comparable(parallel)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
