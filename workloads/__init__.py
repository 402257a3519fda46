"""Workloads: what a test does and which model judges it.

`get(name)` returns a `Workload`: the checker model's name (see checkers.linear.registry) and
a factory of its deterministic op stream (`OpStream`). `checkers_for(test)` gives the checkers
that judge a workload's history, which a DB adapter's `checkers()` usually returns with its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checkers.linear.checker import DEFAULT_TIMEOUT, LinearizabilityChecker
from checkers.lost import LostWritesChecker
from checkers.queue import LogChecker
from workloads.base import OpStream, Workload
from workloads.kv import KV
from workloads.log import LOG
from workloads.register import REGISTER

WORKLOADS: dict[str, Workload] = {w.name: w for w in (REGISTER, KV, LOG)}


class UnknownWorkload(ValueError):
    """A workload name that is not registered."""


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UnknownWorkload(f"unknown workload {name!r} (known: {', '.join(WORKLOADS)})") from None


def checkers_for(test: Mapping[str, Any]) -> list[LinearizabilityChecker | LostWritesChecker | LogChecker]:
    """The checkers of the test's workload history: linearizability with the workload's model
    and the config's time limit for the search, and, when the run makes final reads, that every
    acknowledged write is still there at the end (lost writes named per key); or the log
    checker for the `log` workload."""
    workload = get(str(test.get("workload", "kv")))
    if workload.checker == "log":
        return [LogChecker()]
    timeout = float((test.get("checker") or {}).get("linearizability_timeout", DEFAULT_TIMEOUT))
    out: list[LinearizabilityChecker | LostWritesChecker | LogChecker] = [
        LinearizabilityChecker(workload.model, timeout=timeout)]
    if test.get("final_reads", True):
        out.append(LostWritesChecker())
    return out


__all__ = ["WORKLOADS", "OpStream", "UnknownWorkload", "Workload", "checkers_for", "get"]
