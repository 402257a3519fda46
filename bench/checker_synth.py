"""Synthetic faultline histories from a simulated linearizable key-value store.

Each operation takes effect atomically at a random moment between its invocation and its
completion; crashed operations (info) take effect later or never. Used by the checker
benchmark (bench/checker_corpus.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson


def synthetic_kv_history(
    n_ops: int, n_keys: int, processes: int = 20, seed: int = 1, crash_rate: float = 0.02
) -> list[dict[str, Any]]:
    """history.jsonl records: read / write / cas / delete over `n_keys` keys."""
    return list(synthetic_kv_records(n_ops, n_keys, processes, seed, crash_rate))


def write_synthetic_jsonl(
    path: Path, n_ops: int, n_keys: int, processes: int = 20, seed: int = 1, crash_rate: float = 0.02
) -> Path:
    """The same history written as history.jsonl as it is generated (10 million ops fit)."""
    write_jsonl(path, synthetic_kv_records(n_ops, n_keys, processes, seed, crash_rate))
    return path


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Records as JSON lines, written in batches as they come (never all held)."""
    with path.open("wb") as fh:
        batch: list[bytes] = []
        for rec in records:
            batch.append(orjson.dumps(rec))
            if len(batch) >= 65536:
                fh.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            fh.write(b"\n".join(batch) + b"\n")


def synthetic_kv_records(
    n_ops: int, n_keys: int, processes: int = 20, seed: int = 1, crash_rate: float = 0.02
) -> Iterator[dict[str, Any]]:
    """The records of `synthetic_kv_history`, one at a time."""
    rng = random.Random(seed)
    store: dict[str, Any] = {}
    index = 0
    idle = list(range(processes))
    next_process = processes
    pending: dict[int, dict[str, Any]] = {}
    crashed: list[dict[str, Any]] = []
    started = 0
    time = 0

    def apply(o: dict[str, Any]) -> None:
        key, f, v = o["key"], o["f"], o["value"]
        if f == "read":
            o["out"] = store.get(key)
        elif f == "write":
            store[key] = v
        elif f == "delete":
            store.pop(key, None)
        else:
            o["swapped"] = store.get(key) == v[0]
            if o["swapped"]:
                store[key] = v[1]
        o["applied"] = True

    while started < n_ops or pending:
        time += rng.randrange(1, 1000)
        roll = rng.random()
        if roll < 0.35 and idle and started < n_ops:
            p = idle.pop(rng.randrange(len(idle)))
            key = f"k{rng.randrange(n_keys)}"
            f = rng.choices(("read", "write", "cas", "delete"), (45, 30, 20, 5))[0]
            v: Any = None
            if f == "write":
                v = rng.randrange(10)
            elif f == "cas":
                v = [rng.randrange(10), rng.randrange(10)]
            o = {"process": p, "key": key, "f": f, "value": v, "applied": False}
            pending[p] = o
            started += 1
            yield {"time": time, "process": p, "type": "invoke", "f": f, "key": key, "value": v,
                   "index": index}
            index += 1
        elif roll < 0.65 and pending:
            o = pending[rng.choice(list(pending))]
            if not o["applied"]:
                apply(o)
        elif pending:
            p = rng.choice(list(pending))
            o = pending[p]
            base = {"time": time, "process": p, "f": o["f"], "key": o["key"]}
            if rng.random() < crash_rate:
                del pending[p]
                yield {**base, "type": "info", "value": o["value"], "error": "timeout", "index": index}
                index += 1
                if not o["applied"]:
                    crashed.append(o)
                idle.append(next_process)
                next_process += 1
            elif o["applied"]:
                del pending[p]
                idle.append(p)
                if o["f"] == "read":
                    yield {**base, "type": "ok", "value": o["out"], "index": index}
                elif o["f"] == "cas" and not o["swapped"]:
                    yield {**base, "type": "fail", "value": o["value"], "error": "cas-mismatch", "index": index}
                else:
                    yield {**base, "type": "ok", "value": o["value"], "index": index}
                index += 1
        if crashed and rng.random() < 0.05:
            apply(crashed.pop(rng.randrange(len(crashed))))


def corrupt_a_read(records: list[dict[str, Any]], seed: int = 1) -> dict[str, Any]:
    """Change one ok read to a value no write produced; returns the changed record."""
    rng = random.Random(seed)
    reads = [r for r in records if r["type"] == "ok" and r["f"] == "read"]
    victim = rng.choice(reads)
    victim["value"] = 10_000
    return victim
