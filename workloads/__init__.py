"""Workloads: what a test does and which model judges it.

`get(name)` returns a `Workload`: the checker model's name (see checkers.linear.registry) and
a factory of its deterministic op stream (`OpStream`).
"""

from __future__ import annotations

from workloads.base import OpStream, Workload
from workloads.kv import KV
from workloads.register import REGISTER

WORKLOADS: dict[str, Workload] = {w.name: w for w in (REGISTER, KV)}


class UnknownWorkload(ValueError):
    """A workload name that is not registered."""


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UnknownWorkload(f"unknown workload {name!r} (known: {', '.join(WORKLOADS)})") from None


__all__ = ["WORKLOADS", "OpStream", "UnknownWorkload", "Workload", "get"]
