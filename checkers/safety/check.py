"""The raft-safety checker: every node's events in one streaming pass, then the cluster-wide
invariants. Result format: docs/architecture.md and results.json "raft-safety"."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from checkers.result import UNKNOWN, CheckResult
from checkers.safety.events import EventLogError, events_files, iter_node_events
from checkers.safety.facts import ClusterFacts
from checkers.safety.merge import merge
from checkers.safety.nodefile import NotColumnar
from checkers.safety.parallel import read_node_files
from checkers.safety.scan import EventFormatError, NodeSummary, scan_node
from checkers.safety.violations import Event

log = logging.getLogger(__name__)

NAME = "raft-safety"


def check(events_by_node: Mapping[str, Iterable[Event]],
          altered: Mapping[str, Sequence[float]] | None = None) -> CheckResult:
    """Judge the Raft safety invariants over all boots of all nodes of one run.

    Each node's events must be in the order the node wrote them; an iterable is consumed
    once, so streamed events need not fit in memory. `altered`: per node, the wall-clock
    times at which the nemesis altered its disk (corruption while it was down): what it had
    made durable before such a time is not held against it (see scan.NodeState.on_altered).
    """
    started = time.perf_counter()
    facts = ClusterFacts()
    alt = altered or {}
    summaries: list[NodeSummary] = [
        scan_node(node, events, facts, alt.get(node, ())) for node, events in sorted(events_by_node.items())
    ]
    facts.finish()
    return _result(facts, summaries, started)


def check_run(run_dir: Path, workers: int | None = None,
              altered: Mapping[str, Sequence[float]] | None = None) -> CheckResult:
    """check() over run_dir/nodes/*/events.jsonl, the same verdict and evidence.

    Node files are read by `workers` processes (default: see parallel.default_workers; 1:
    in this process), applies as numpy columns (nodefile.py). A file that path cannot take
    (a corrupt line, an apply outside the contract) is checked by streaming its events as
    dicts through check(), which also gives the reader's exact error.
    """
    started = time.perf_counter()
    files = events_files(run_dir)
    if not files:
        log.info("%s: no nodes/*/events.jsonl", run_dir)
    try:
        node_files = read_node_files(files, workers, altered)
    except (EventLogError, EventFormatError, NotColumnar) as e:
        log.info("%s: reading node events as dicts instead (%s)", run_dir, e)
        return check({node: iter_node_events(path) for node, path in files.items()}, altered)
    for nf in node_files:
        for warning in nf.warnings:
            log.warning("%s", warning)
    facts, summaries = merge(node_files)
    facts.finish()
    return _result(facts, summaries, started)


def _result(facts: ClusterFacts, summaries: list[NodeSummary], started: float) -> CheckResult:
    total = sum(s.events for s in summaries)
    stats: dict[str, Any] = {
        "nodes": len(summaries),
        "events": total,
        "applies": sum(s.applies for s in summaries),
        "boots": {s.node: s.boots for s in summaries},
        "max_term": max((s.max_term for s in summaries), default=0),
        "terms_with_leader": len(facts.leaders),
        "max_applied_index": max((s.max_applied for s in summaries), default=0),
        "violations_by_kind": dict(facts.log.counts),
        "refusals": [r for s in summaries for r in s.refusals],
        "violations_suppressed": facts.log.suppressed(),
        "check_seconds": round(time.perf_counter() - started, 3),
    }
    reported = sorted(facts.log.reported, key=lambda x: (x.ts is None, x.ts or 0.0))
    if reported:
        valid: bool | str = False
    elif total == 0:
        valid = UNKNOWN
        stats["message"] = "no node events to check"
    else:
        valid = True
    return CheckResult(NAME, valid, {
        "violations": [x.to_json() for x in reported],
        "timeline": {s.node: s.timeline.to_json() for s in summaries},
        "stats": stats,
    })
