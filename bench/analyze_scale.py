"""Benchmark of `faultline analyze` on a long run: each stage's time and peak memory, and the
whole command end to end.

The run folder (written once into --dir, reused when already there) looks like a 10-minute
soak of raftkv: test.yaml (raftkv, kv workload, 3 nodes, 50 clients), a history.jsonl of
`--ops` operations from bench/checker_synth.py (1,000 keys, 50 clients, 2% crashed, seed 11;
times stretched to ~2,000 ops/s) with a partition every 20 s, and, unless --no-events, each
node's events.jsonl as raftkv writes it: a boot, the configuration, a leader election at
every partition, and an apply (and every 64 entries a commit) per acknowledged write, cas or
delete on every node. --anomaly makes one read in the middle return a value nobody wrote, so
the linearizability checker finds a counterexample and the report draws it.

Stages, each in a fresh Python process (peak RSS is that process's, or its largest reader
process's): `edn` (history.edn export), `linearizability`, `raft-safety` and `stats` (the
checkers as `faultline analyze` runs them), `report` (render_run), and `analyze` (the command
`faultline analyze RUN_DIR`: all of the above plus results.json and the store index).

    .venv/bin/python bench/analyze_scale.py [--dir DIR] [--ops N] [--no-events] [--anomaly] [--repeat N]
        [--stages analyze,edn,linearizability,raft-safety,stats,report] [--code TREE]

--code runs the stages with another checkout's code (e.g. `git archive <commit> | tar -x -C
TREE`), for a before/after side by side on the same run folder. `analyze` runs first: the
report stage draws the results.json it wrote.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
#: the code under measurement (--code), else this checkout
CODE = Path(os.environ.get("ANALYZE_BENCH_CODE") or ROOT)
sys.path.insert(0, str(CODE))
sys.path.insert(0, str(ROOT / "bench"))

from checker_synth import synthetic_kv_records, write_jsonl  # noqa: E402

NODES = ("n1", "n2", "n3")
STAGES = ("analyze", "edn", "linearizability", "raft-safety", "stats", "report")
#: The synthetic history's clock runs ~400,000 ops/s; stretched to a soak's ~2,000 ops/s.
STRETCH = 200
PARTITION_EVERY_NS = 20 * 10**9
PARTITION_FOR_NS = 8 * 10**9
START_WALL = 1_796_000_000.0
COMMIT_EVERY = 64


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def _nemesis(end_ns: int) -> Iterator[dict[str, Any]]:
    t, k = PARTITION_EVERY_NS, 0
    while t + PARTITION_FOR_NS < end_ns:
        minority = NODES[k % len(NODES)]
        groups = [[n for n in NODES if n != minority], [minority]]
        yield {"time": t, "process": "nemesis", "type": "info", "f": "start-partition",
               "value": {"kind": "majority", "groups": groups}}
        yield {"time": t + PARTITION_FOR_NS, "process": "nemesis", "type": "info", "f": "stop-partition",
               "value": None}
        t, k = t + PARTITION_EVERY_NS, k + 1


def _client(n_ops: int) -> Iterator[dict[str, Any]]:
    for rec in synthetic_kv_records(n_ops, 1_000, 50, 11, 0.02):
        rec.pop("index", None)
        rec["time"] *= STRETCH
        yield rec


def write_history(path: Path, n_ops: int, anomaly: bool = False) -> tuple[list[int], list[int]]:
    """history.jsonl; returns the completion times of acknowledged mutations (one log entry
    each) and the partition start times (one election each). With `anomaly`, the first ok read
    past the middle of the history returns a value nobody wrote (not linearizable)."""
    end = count = 0
    for rec in _client(n_ops):
        end = rec["time"]
        count += 1
    stale_from = count // 2 if anomaly else None
    entries: list[int] = []
    elections: list[int] = []
    merged = heapq.merge(_client(n_ops), _nemesis(end), key=lambda r: r["time"])

    def indexed() -> Iterator[dict[str, Any]]:
        nonlocal stale_from
        for index, rec in enumerate(merged):
            rec["index"] = index
            if rec["process"] == "nemesis":
                if rec["f"] == "start-partition":
                    elections.append(rec["time"])
            elif rec["type"] == "ok" and rec["f"] in ("write", "cas", "delete"):
                entries.append(rec["time"])
            elif stale_from is not None and index >= stale_from and rec["type"] == "ok" and rec["f"] == "read":
                rec["value"], stale_from = 10_000, None
            yield rec

    write_jsonl(path, indexed())
    return entries, elections


def _ev(ts: float, node: str, type_: str, **fields: Any) -> bytes:
    return orjson.dumps({"ts": round(ts, 6), "node": node, "boot": 1, "type": type_, **fields})


def write_events(nodes_dir: Path, entries: list[int], elections: list[int]) -> None:
    """Each node's events.jsonl in raftkv's form: one boot, one leader per election term, the
    same entries applied everywhere in order."""
    voters = list(NODES)
    for i, node in enumerate(NODES):
        lag = 0.0002 * (i + 1)
        d = nodes_dir / node
        d.mkdir(parents=True, exist_ok=True)
        out = [
            _ev(START_WALL - 1.0, node, "boot", term=0, vote=None, commit=0, voters=[], learners=[],
                snapshot_index=0, last_index=0),
            _ev(START_WALL - 0.99, node, "role", role="follower", term=1, lead=None),
            _ev(START_WALL - 0.98, node, "conf", index=1, voters=voters, learners=[]),
            _ev(START_WALL - 0.98, node, "apply", index=1, term=1,
                digest=hashlib.sha256(b"conf").hexdigest()[:16], kind="conf"),
            _ev(START_WALL - 0.98, node, "commit", index=1, term=1),
        ]
        index, term = 1, 1
        terms = [START_WALL - 0.5] + [START_WALL + t / 1e9 for t in elections]
        k = 0
        with (d / "events.jsonl").open("wb") as fh:
            for j, start in enumerate(terms):
                term += 1
                leader = NODES[j % len(NODES)]
                if node == leader:
                    out.append(_ev(start, node, "role", role="pre-candidate", term=term - 1, lead=None))
                    out.append(_ev(start + 0.001, node, "role", role="candidate", term=term, lead=None))
                out.append(_ev(start + 0.002, node, "vote", term=term, **{"for": leader}))
                role = "leader" if node == leader else "follower"
                out.append(_ev(start + 0.003, node, "role", role=role, term=term, lead=leader))
                index += 1
                out.append(_ev(start + 0.004 + lag, node, "apply", index=index, term=term,
                               digest=hashlib.sha256(b"empty%d" % index).hexdigest()[:16], kind="empty"))
                until = terms[j + 1] if j + 1 < len(terms) else float("inf")
                while k < len(entries) and START_WALL + entries[k] / 1e9 < until:
                    index += 1
                    ts = START_WALL + entries[k] / 1e9 + lag
                    out.append(_ev(ts, node, "apply", index=index, term=term,
                                   digest=hashlib.blake2b(b"%d" % index, digest_size=8).hexdigest(),
                                   kind="normal"))
                    if index % COMMIT_EVERY == 0:
                        out.append(_ev(ts, node, "commit", index=index, term=term))
                    k += 1
                    if len(out) >= 65536:
                        fh.write(b"\n".join(out) + b"\n")
                        out.clear()
            out.append(_ev(START_WALL + (entries[-1] if entries else 0) / 1e9 + 0.01, node, "commit",
                           index=index, term=term))
            fh.write(b"\n".join(out) + b"\n")


def build(root: Path, n_ops: int, events: bool, anomaly: bool = False) -> Path:
    """The run folder `root/store/analyze-<n>[-no-events][-anomaly]/<stamp>-11/`, written once."""
    name = f"analyze-{n_ops}" + ("" if events else "-no-events") + ("-anomaly" if anomaly else "")
    run_dir = root / "store" / name / "20261207T000000-11"
    if (run_dir / "history.jsonl").exists():
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"writing {run_dir} ...", file=sys.stderr)
    test = {"name": name, "db": "raftkv", "provider": "local", "nodes": list(NODES), "workload": "kv",
            "concurrency": 50, "seed": 11, "time_limit": 600.0, "start_time": START_WALL,
            "nemesis": {"faults": ["partition"], "schedule": "interval", "interval": 20.0, "duration": 8.0}}
    (run_dir / "test.yaml").write_text(json.dumps(test, indent=1))  # JSON is YAML
    tmp = run_dir / "history.jsonl.tmp"
    entries, elections = write_history(tmp, n_ops, anomaly)
    if events:
        write_events(run_dir / "nodes", entries, elections)
    tmp.replace(run_dir / "history.jsonl")
    return run_dir


# ---------------------------------------------------------------- one stage, in this process


def stage(name: str, run_dir: Path) -> dict[str, Any]:
    import logging

    logging.basicConfig(level=logging.WARNING)
    from checkers.rundata import StoredRun
    from harness.run import analysis

    detail = ""
    if name == "edn":
        # the export as `faultline analyze` of the code under measurement does it (asked of
        # the file: the editable install would find a module the older code lacks in this tree)
        src, dest = run_dir / "history.jsonl", run_dir / "history.edn"
        if (CODE / "checkers" / "edn_export.py").exists():
            from checkers.edn_export import export_edn

            count = export_edn(src, dest)
        else:
            from checkers.history import write_edn_from_jsonl

            count = write_edn_from_jsonl(src, dest)
        detail = f"{count} records"
    elif name == "report":
        from reports import render_run

        out = render_run(run_dir)
        detail = f"{out.stat().st_size / 1e6:.1f} MB"
    else:
        test = analysis.load_test(run_dir)
        checkers, _ = analysis.run_checkers(test)
        (checker,) = [c for c in checkers if c.name == name]
        result = checker.check(StoredRun(run_dir, test))
        detail = str(result.valid)
    return {"detail": detail}


def measure(name: str, run_dir: Path) -> dict[str, Any]:
    """One stage in a fresh process: wall, CPU (with its children), peak RSS."""
    if name == "analyze":
        cmd = [sys.executable, "-m", "harness.cli", "analyze", str(run_dir)]
    else:
        cmd = [sys.executable, __file__, "--stage", name, str(run_dir)]
    env = {**os.environ, "ANALYZE_BENCH_CODE": str(CODE), "PYTHONPATH": str(CODE)}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=CODE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if name != "analyze" and code != 0:
        raise SystemExit(f"stage {name} failed ({code}): {err[-2000:]}")
    detail = json.loads(out.strip().splitlines()[-1])["detail"] if name != "analyze" else f"exit {code}"
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "detail": detail}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/faultline-analyze-bench"))
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--no-events", action="store_true")
    parser.add_argument("--anomaly", action="store_true", help="one read returns a value nobody wrote")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--code", type=Path, help="run the stages with this checkout's code")
    parser.add_argument("--stage", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage[0], Path(args.stage[1]))))
        return
    global CODE
    if args.code:
        CODE = args.code.resolve()
    run_dir = build(args.dir, args.ops, not args.no_events, args.anomaly)
    if args.build_only:
        print(run_dir)
        return
    mb = (run_dir / "history.jsonl").stat().st_size / 1e6
    ev_mb = sum(p.stat().st_size for p in run_dir.glob("nodes/*/events.jsonl")) / 1e6
    print(f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPython {sys.version.split()[0]}, "
          f"code {CODE}, {run_dir}: history {mb:.0f} MB, node events {ev_mb:.0f} MB\n")
    print("| stage | wall s | CPU s | peak RSS MiB | result | load |")
    print("|---|---|---|---|---|---|")
    for name in args.stages.split(","):
        for _ in range(args.repeat):
            r = measure(name, run_dir)
            print(f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mb']:.0f} | {r['detail']} | {load()} |",
                  flush=True)


if __name__ == "__main__":
    main()
