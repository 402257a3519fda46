"""log: appends of unique values to one replicated log (a NATS stream, ...), then every
replica's copy read at the end; judged by checkers.queue (lost, duplicated, divergent)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workloads.base import Workload


@dataclass
class LogStream:
    """Appends of 1, 2, 3, ...: unique values, so each one names its append."""

    keyed: bool = False
    count: int = 0

    def next(self) -> dict[str, Any]:
        self.count += 1
        return {"f": "append", "value": self.count}

    def active_keys(self) -> list[str]:
        return []

    def written_keys(self, limit: int = 1000) -> list[str]:
        return []  # no keys: its final reads are each replica's copy


def make(seed: int, opts: Mapping[str, Any]) -> LogStream:
    return LogStream()


LOG = Workload(name="log", model="", make=make, checker="log", final_reads="replicas")
