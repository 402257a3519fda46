"""Raft safety as `Checker`s of a stored run, one per event source: raftkv's node events, or
the role lines of etcd's logs. A DB adapter names the one that reads its nodes (see
harness.protocols.DB.checkers). A source that cannot be read gives "unknown", saying why."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from checkers.result import UNKNOWN, CheckResult
from checkers.rundata import StoredRun
from checkers.safety import etcd_log, nats_log
from checkers.safety.check import NAME, check, check_run
from checkers.safety.events import EventLogError

#: The nemesis op that alters a node's disk while it is down (harness/nemesis/faults/corrupt.py).
ALTERING_OPS = ("start-corrupt",)


def altered_disks(history: Iterable[Mapping[str, Any]], start_time: float) -> dict[str, list[float]]:
    """Per node, the wall-clock times at which the nemesis altered its disk: the `start-corrupt`
    ops that succeeded (their value names the node), at the history's time + the run's
    start_time (test.yaml)."""
    out: dict[str, list[float]] = {}
    for rec in history:
        if rec.get("process") != "nemesis" or rec.get("f") not in ALTERING_OPS or rec.get("error"):
            continue
        value, t = rec.get("value"), rec.get("time")
        node = value.get("node") if isinstance(value, Mapping) else None
        if isinstance(node, str) and isinstance(t, int | float):
            out.setdefault(node, []).append(start_time + t / 1e9)
    return out


def altered_in(run: StoredRun) -> dict[str, list[float]]:
    """altered_disks of a stored run whose faults include corrupt (else nothing to read)."""
    faults = (run.test.get("nemesis") or {}).get("faults") or []
    start = run.test.get("start_time")
    if "corrupt" not in faults or not isinstance(start, int | float):
        return {}
    return altered_disks(run.history(), float(start))


class RaftkvEventsChecker:
    """Every invariant, from `nodes/<node>/events.jsonl` as raftkv writes them; a node whose
    disk the nemesis corrupted is not held to what it had made durable before."""

    name = NAME

    def check(self, run: StoredRun) -> CheckResult:
        try:
            result = check_run(run.dir, altered=altered_in(run))
        except (ValueError, OSError, EventLogError) as e:
            return CheckResult(self.name, UNKNOWN, {"error": f"node events: {e}"})
        result.name = self.name
        return result


class EtcdLogChecker:
    """Election safety and term monotonicity from etcd 3.4's raft log lines
    (`nodes/<node>/etcd.log`): role and boot lines only (see checkers.safety.etcd_log for what
    the logs cannot show); a member whose disk the nemesis corrupted is not held to what it
    had made durable before."""

    name = NAME

    def check(self, run: StoredRun) -> CheckResult:
        logs = {p.parent.name: p for p in sorted(run.nodes_dir.glob("*/etcd.log"))}
        if not logs:
            return CheckResult(self.name, UNKNOWN, {"error": f"{run.nodes_dir}: no */etcd.log collected"})
        try:
            result = check(etcd_log.read_etcd_logs(logs), altered_in(run))
        except etcd_log.EtcdLogError as e:
            return CheckResult(self.name, UNKNOWN, {"error": str(e)})
        result.name = self.name
        return result


class NatsLogChecker:
    """Election safety, one vote per term and term monotonicity in every Raft group of a NATS
    JetStream cluster, from nats-server's debug lines (`nodes/<node>/nats.log`; see
    checkers.safety.nats_log for what the logs cannot show)."""

    name = NAME

    def check(self, run: StoredRun) -> CheckResult:
        logs = {p.parent.name: p for p in sorted(run.nodes_dir.glob("*/nats.log"))}
        if not logs:
            return CheckResult(self.name, UNKNOWN, {"error": f"{run.nodes_dir}: no */nats.log collected"})
        try:
            return nats_log.check_nats_logs(logs)
        except nats_log.NatsLogError as e:
            return CheckResult(self.name, UNKNOWN, {"error": str(e)})
