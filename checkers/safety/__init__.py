"""Raft safety from node events: election safety, one vote per term, leader membership,
state machine safety and apply order, leader completeness, monotonicity and durability.

Readers (the only I/O): `read_events` / `iter_node_events` for raftkv's events.jsonl, and
`etcd_log.read_etcd_logs` for etcd 3.4's raft log lines. `check` is a pure function of them.
`check_run` gives check()'s result for a run folder, reading the node files without a dict per
apply or commit (templates, nodefile, merge), in worker processes for a large run (parallel).
"""

from checkers.safety.check import NAME, check, check_run
from checkers.safety.events import EventLogError, iter_node_events, read_events
from checkers.safety.scan import EventFormatError
from checkers.safety.violations import KINDS, Event, Violation

__all__ = [
    "KINDS",
    "NAME",
    "Event",
    "EventFormatError",
    "EventLogError",
    "Violation",
    "check",
    "check_run",
    "iter_node_events",
    "read_events",
]
