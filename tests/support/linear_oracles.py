"""Oracles for the linearizability checker tests: brute force over every order, and a
simulated linearizable register (each op takes effect at one instant inside its interval;
crashed ops later or never)."""

from __future__ import annotations

import itertools
import random
from typing import Any

from checkers.linear import Model, Operation


def brute_force(model: Model, ops: list[Operation]) -> bool:
    """Try every order of every subset that holds all ok ops and any of the info ops."""
    ok = [o for o in ops if o.type == "ok"]
    info = [o for o in ops if o.type == "info"]
    for r in range(len(info) + 1):
        for chosen in itertools.combinations(info, r):
            for order in itertools.permutations(ok + list(chosen)):
                if _legal(model, order):
                    return True
    return False


def _legal(model: Model, order: tuple[Operation, ...]) -> bool:
    for a, b in itertools.combinations(range(len(order)), 2):
        if order[b].return_pos < order[a].call_pos:  # b returned before a was invoked
            return False
    states = {model.init()}
    for o in order:
        states = {s2 for s in states for s2 in model.step_all(s, o.input, o.output)}
        if not states:
            return False
    return True


def simulate(
    seed: int, n_ops: int, processes: int, use_cas: bool, crash_rate: float, distinct: bool = False
) -> list[dict[str, Any]]:
    """A register that applies each op atomically at a random moment between its invocation
    and its completion; crashed ops (info) may apply later or never."""
    rng = random.Random(seed)
    value: Any = None
    time = 0
    records: list[dict[str, Any]] = []
    idle = list(range(processes))
    next_process = processes
    pending: dict[int, dict[str, Any]] = {}  # process -> op (applied or not)
    crashed: list[dict[str, Any]] = []  # info ops not applied yet
    started = 0

    def apply(o: dict[str, Any]) -> None:
        nonlocal value
        if o["f"] == "read":
            o["out"] = value
        elif o["f"] == "write":
            value = o["value"]
        else:
            o["swapped"] = value == o["value"][0]
            if o["swapped"]:
                value = o["value"][1]
        o["applied"] = True

    for _ in range(n_ops * 6):
        time += rng.choice((0, 1, 1, 2))  # equal timestamps happen
        choice = rng.random()
        if choice < 0.3 and idle and started < n_ops:
            p = idle.pop(rng.randrange(len(idle)))
            f = rng.choice(("read", "write", "cas") if use_cas else ("read", "write"))
            v: Any = None if f == "read" else rng.randrange(5) if f == "write" else [rng.randrange(5), rng.randrange(5)]
            if distinct and f == "write":
                v = 100 + started
            o = {"process": p, "f": f, "value": v, "applied": False}
            pending[p] = o
            started += 1
            records.append({"time": time, "process": p, "type": "invoke", "f": f, "value": v})
        elif choice < 0.6 and pending:
            o = rng.choice(list(pending.values()))
            if not o["applied"]:
                apply(o)
        elif choice < 0.9 and pending:
            p = rng.choice(list(pending))
            o = pending[p]
            if rng.random() < crash_rate:
                del pending[p]
                records.append({"time": time, "process": p, "type": "info", "f": o["f"], "value": o["value"]})
                if not o["applied"]:
                    crashed.append(o)
                idle.append(next_process)
                next_process += 1
            elif o["applied"]:
                del pending[p]
                idle.append(p)
                if o["f"] == "read":
                    records.append({"time": time, "process": p, "type": "ok", "f": "read", "value": o["out"]})
                else:
                    done = "ok" if o["f"] == "write" or o["swapped"] else "fail"
                    records.append({"time": time, "process": p, "type": done, "f": o["f"], "value": o["value"]})
        elif crashed and rng.random() < 0.5:
            apply(crashed.pop(rng.randrange(len(crashed))))
    return records
