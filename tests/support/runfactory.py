"""Builds realistic run folders for report tests: a seeded simulated cas-register run with a
nemesis partition, node events with elections and a restart, and results.json.

The history is produced by executing each op atomically at a random instant inside its
invoke/complete interval, so it is linearizable unless `stale_read` appends a read of a value
nobody wrote. results.json comes from running the project's checkers on the files.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from checkers.history import ops_from_records
from checkers.linear import check as linear_check
from checkers.linear import make_model
from checkers.result import merge_verdicts
from checkers.safety import check_run

START_WALL = 1_764_000_000.0  # a fixed wall clock for the test's t=0


@dataclass
class SimRun:
    run_dir: Path
    history: list[dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    results: dict[str, Any]


def _history(n_ops: int, concurrency: int, keys: int, rng: random.Random) -> list[dict[str, Any]]:
    """Invocations and completions in time order; each worker has one op in flight."""
    lines: list[tuple[int, dict[str, Any]]] = []
    state: dict[str, int | None] = {f"k{i}": None for i in range(keys)}
    clock = [0] * concurrency
    process = list(range(concurrency))
    # pending atomic effects ordered by their linearization instant
    planned: list[tuple[int, int, dict[str, Any], dict[str, Any]]] = []
    for i in range(n_ops):
        w = i % concurrency
        start = clock[w] + rng.randint(5_000_000, 40_000_000)  # 5-40 ms think time
        lat = int(rng.lognormvariate(14.0, 0.6))  # ~1.2 ms median, in ns
        end = start + lat
        clock[w] = end
        f = rng.choice(["read", "read", "write", "cas"])
        key = f"k{rng.randrange(keys)}"
        value: Any = None
        if f == "write":
            value = rng.randint(0, 9)
        elif f == "cas":
            value = [rng.randint(0, 9), rng.randint(0, 9)]
        inv = {"process": process[w], "type": "invoke", "f": f, "key": key, "value": value, "node": f"n{1 + w % 3}"}
        lp = rng.randint(start, end)
        planned.append((lp, i, inv, {"start": start, "end": end, "w": w}))
        if rng.random() < 0.01:
            process[w] += concurrency  # an info op: the worker continues as a new process
            planned[-1][3]["info"] = True
    planned.sort(key=lambda x: (x[0], x[1]))
    for _lp, _i, inv, meta in planned:
        key, f = inv["key"], inv["f"]
        comp = dict(inv, type="ok")
        if f == "read":
            comp["value"] = state[key]
        elif f == "write":
            state[key] = inv["value"]
        elif f == "cas":
            if state[key] == inv["value"][0]:
                state[key] = inv["value"][1]
            else:
                comp["type"] = "fail"
                comp["error"] = "cas-mismatch"
        if meta.get("info"):
            comp = dict(inv, type="info", error="timeout")
        lines.append((meta["start"], inv))
        lines.append((meta["end"], comp))
    lines.sort(key=lambda x: (x[0], 0 if x[1]["type"] == "invoke" else 1))
    return [dict(line, time=t) for t, line in lines]


def _nemesis(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    end = max(h["time"] for h in history)
    a, b = end // 3, end // 2
    nem = [
        {"time": a, "process": "nemesis", "type": "info", "f": "start-partition",
         "value": {"kind": "majority", "groups": [["n1", "n2"], ["n3"]]}},
        {"time": b, "process": "nemesis", "type": "info", "f": "stop-partition", "value": None},
        {"time": (2 * end) // 3, "process": "nemesis", "type": "info", "f": "start-kill", "value": ["n1"]},
        {"time": (5 * end) // 6, "process": "nemesis", "type": "info", "f": "stop-kill", "value": ["n1"]},
    ]
    merged = sorted(history + nem, key=lambda h: h["time"])
    return [dict(h, index=i) for i, h in enumerate(merged)]


def _events(duration_s: float, two_leaders: bool) -> dict[str, list[dict[str, Any]]]:
    """n1 leads term 2, is killed at 2/3 and restarts at 5/6; n2 wins term 3. With
    `two_leaders`, n3 also claims leadership of term 2 (an election-safety violation)."""
    t0 = START_WALL
    voters = ["n1", "n2", "n3"]
    ev: dict[str, list[dict[str, Any]]] = {n: [] for n in voters}
    for n in voters:
        ev[n].append({"ts": t0, "node": n, "boot": 1, "type": "boot", "term": 1, "vote": None, "commit": 0,
                      "voters": voters, "learners": [], "snapshot_index": 0})
        ev[n].append({"ts": t0 + 0.01, "node": n, "boot": 1, "type": "conf", "index": 1, "voters": voters, "learners": []})
    ev["n1"] += [
        {"ts": t0 + 0.2, "node": "n1", "boot": 1, "type": "role", "role": "pre-candidate", "term": 1, "lead": None},
        {"ts": t0 + 0.21, "node": "n1", "boot": 1, "type": "role", "role": "candidate", "term": 2, "lead": None},
        {"ts": t0 + 0.22, "node": "n1", "boot": 1, "type": "role", "role": "leader", "term": 2, "lead": "n1"},
    ]
    for n in ("n2", "n3"):
        ev[n].append({"ts": t0 + 0.22, "node": n, "boot": 1, "type": "role", "role": "follower", "term": 2, "lead": "n1"})
    if two_leaders:
        mid = t0 + duration_s / 2
        ev["n3"] += [
            {"ts": mid, "node": "n3", "boot": 1, "type": "role", "role": "leader", "term": 2, "lead": "n3"},
            {"ts": mid + 0.05, "node": "n3", "boot": 1, "type": "role", "role": "follower", "term": 2, "lead": "n1"},
        ]
    kill = t0 + duration_s * 2 / 3
    ev["n1"].append({"ts": kill - 0.001, "node": "n1", "boot": 1, "type": "commit", "index": 50, "term": 2})
    ev["n2"] += [
        {"ts": kill + 0.3, "node": "n2", "boot": 1, "type": "role", "role": "candidate", "term": 3, "lead": None},
        {"ts": kill + 0.31, "node": "n2", "boot": 1, "type": "role", "role": "leader", "term": 3, "lead": "n2"},
    ]
    ev["n3"].append({"ts": kill + 0.31, "node": "n3", "boot": 1, "type": "role", "role": "follower", "term": 3, "lead": "n2"})
    back = t0 + duration_s * 5 / 6
    ev["n1"] += [
        {"ts": back, "node": "n1", "boot": 2, "type": "boot", "term": 2, "vote": "n1", "commit": 50,
         "voters": voters, "learners": [], "snapshot_index": 0},
        {"ts": back + 0.05, "node": "n1", "boot": 2, "type": "role", "role": "follower", "term": 3, "lead": "n2"},
    ]
    end = t0 + duration_s
    for n in voters:
        ev[n].append({"ts": end, "node": n, "boot": ev[n][-1]["boot"], "type": "commit", "index": 99, "term": 3})
    return ev


def _stale_read(history: list[dict[str, Any]]) -> None:
    """Insert, mid-run, a read of k0 returning a value nobody wrote (values are 0..9): the
    linearizability checker must find it, among the ops concurrent with it."""
    t = history[len(history) // 2]["time"]
    inv = {"time": t, "process": 10_000, "type": "invoke", "f": "read", "key": "k0", "value": None, "node": "n3"}
    ok = dict(inv, time=t + 3_000_000, type="ok", value=42)
    history += [inv, ok]
    history.sort(key=lambda h: (h["time"], 0 if h["type"] == "invoke" else 1))
    for i, h in enumerate(history):
        h["index"] = i


def build_run(store: Path, *, n_ops: int = 400, seed: int = 7, stale_read: bool = False,
              concurrency: int = 5, name: str = "raftkv-register", stamp: str = "20261126T120000",
              with_events: bool = True, two_leaders: bool = False, linear: bool = True) -> SimRun:
    rng = random.Random(seed)
    history = _nemesis(_history(n_ops, concurrency, 3, rng))
    if stale_read:
        _stale_read(history)
    duration_s = max(h["time"] for h in history) / 1e9
    events = _events(duration_s, two_leaders) if with_events else {}
    run_dir = store / name / f"{stamp}-{seed}"
    (run_dir / "nodes").mkdir(parents=True)
    test = {"name": name, "seed": seed, "config": "configs/local.yaml", "concurrency": concurrency,
            "start_time": START_WALL, "versions": {"faultline": "0.1.0", "python": "3.11"},
            "nodes": ["n1", "n2", "n3"], "workload": "register"}
    (run_dir / "test.yaml").write_text(yaml.safe_dump(test))
    with (run_dir / "history.jsonl").open("w") as fh:
        for h in history:
            fh.write(json.dumps(h) + "\n")
    for node, evs in events.items():
        (run_dir / "nodes" / node).mkdir()
        with (run_dir / "nodes" / node / "events.jsonl").open("w") as fh:
            for e in evs:
                fh.write(json.dumps(e) + "\n")
        (run_dir / "nodes" / node / "node.log").write_text(f"{node} started\n")
    results = results_for(history, run_dir, linear)
    (run_dir / "results.json").write_text(json.dumps(results))
    return SimRun(run_dir, history, events, results)


def results_for(history: list[dict[str, Any]], run_dir: Path, linear: bool) -> dict[str, Any]:
    """results.json as the harness writes it, from the project's own checkers (without the
    linearizability search when `linear` is false: it is slow on very large histories)."""
    checkers: dict[str, Any] = {}
    if linear:
        model = make_model("kv")
        checkers["linearizability"] = linear_check(model, ops_from_records(history), timeout=60).to_check_result().to_json()
    checkers["raft-safety"] = check_run(run_dir).to_json()
    completions = [h for h in history if h["process"] != "nemesis" and h["type"] != "invoke"]
    span = max(h["time"] for h in history) / 1e9
    stats = {"valid": True, "ops": {}, "latency_ms": {}, "throughput": len(completions) / max(span, 1e-9)}
    checkers["stats"] = stats
    overall = merge_verdicts([c["valid"] for c in checkers.values()])
    return {"valid": overall, "checkers": checkers}


def rendered_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with one valid and one anomalous run (stale read + two leaders), rendered and
    indexed."""
    from reports import render_index, render_run

    store = tmp_path_factory.mktemp("store")
    valid = build_run(store, seed=3, stamp="20261126T100000")
    bad = build_run(store, seed=4, stamp="20261126T110000", stale_read=True, two_leaders=True)
    for r in (valid, bad):
        render_run(r.run_dir)
    render_index(store)
    return {"store": store, "valid": valid.run_dir, "anomaly": bad.run_dir,
            "valid_results": valid.results, "anomaly_results": bad.results}
