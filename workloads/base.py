"""The shape every workload shares: a seeded stream of client ops over registers.

Ops are history dicts without process/type/time: `{"f": "write", "key": "k3", "value": 17}`.
Written values are unique per key (a per-key counter), so a checker can tell writes apart.
Keys rotate: each group of `keys * ops_per_key` ops uses `keys` fresh keys, which keeps every
key's history short enough for the linearizability search, as Jepsen's independent keys do.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

FS = ("read", "write", "cas", "delete")


@dataclass
class OpStream:
    """Deterministic from `seed`: the same seed and options give the same op sequence."""

    seed: int
    keyed: bool
    keys: int
    ops_per_key: int
    weights: dict[str, float]
    rng: random.Random = field(init=False)
    count: int = 0
    _next_value: dict[str, int] = field(default_factory=dict)
    _last_value: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._fs = [f for f in FS if self.weights.get(f, 0) > 0]
        total = sum(self.weights[f] for f in self._fs)
        acc, self._cum = 0.0, []
        for f in self._fs:
            acc += self.weights[f] / total
            self._cum.append(acc)

    def _key(self) -> str:
        if not self.keyed:
            return "r"
        group = self.count // (self.keys * self.ops_per_key)
        return f"k{group * self.keys + self.rng.randrange(self.keys)}"

    def _fresh(self, key: str) -> int:
        v = self._next_value.get(key, 0) + 1
        self._next_value[key] = v
        self._last_value[key] = v
        return v

    def next(self) -> dict[str, Any]:
        key = self._key()
        # one uniform draw against the cumulative weights (random.choices costs more per call)
        f = self._fs[min(bisect.bisect_right(self._cum, self.rng.random()), len(self._fs) - 1)]
        self.count += 1
        if f == "cas" and key not in self._last_value:
            f = "write"  # nothing to compare against yet
        if f == "read":
            op: dict[str, Any] = {"f": "read", "value": None}
        elif f == "write":
            op = {"f": "write", "value": self._fresh(key)}
        elif f == "cas":
            # compare against the newest or an older value, so some compares match, some not
            last = self._last_value[key]
            expected = last if self.rng.random() < 0.7 else max(1, last - self.rng.randrange(1, 3))
            op = {"f": "cas", "value": [expected, self._fresh(key)]}
        else:
            op = {"f": "delete", "value": None}
        if self.keyed:
            op["key"] = key
        return op

    def written_keys(self, limit: int = 1000) -> list[str]:
        """Every key a write or cas was generated for, oldest first; the newest `limit` when
        there are more (what the final reads look at: an acknowledged write to a key of an
        earlier group must still be there too)."""
        if not self.keyed:
            return ["r"]
        keys = list(self._next_value)  # dicts keep insertion order: first write first
        return keys[-limit:] if limit > 0 else keys

    def active_keys(self) -> list[str]:
        """Keys of the current group (what the final reads look at)."""
        if not self.keyed:
            return ["r"]
        group = max(0, self.count - 1) // (self.keys * self.ops_per_key)
        return [f"k{group * self.keys + i}" for i in range(self.keys)]


class Stream(Protocol):
    """What the generator and the final reads need of a workload's op stream."""

    keyed: bool

    def next(self) -> dict[str, Any]: ...

    def active_keys(self) -> list[str]: ...

    def written_keys(self, limit: int = 1000) -> list[str]: ...


@dataclass(frozen=True)
class Workload:
    name: str
    #: model name in checkers.linear's registry ("" for a workload no model judges)
    model: str
    make: Callable[[int, Mapping[str, Any]], Stream]
    #: the checker that judges its client ops: "linearizability" (with `model`) or "log"
    checker: str = "linearizability"
    #: what the final reads read: "keys" (each key written, the newest 1000 at most, through
    #: every node) or "replicas"
    #: (every replica's own copy of the log, see checkers.queue)
    final_reads: str = "keys"
