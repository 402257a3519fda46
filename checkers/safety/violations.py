"""The evidence a Raft safety violation carries into results.json and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: One node event as read from events.jsonl (see docs/architecture.md, "Node events").
Event = dict[str, Any]

ELECTION_SAFETY = "election-safety"
ONE_VOTE_PER_TERM = "one-vote-per-term"
LEADER_MEMBERSHIP = "leader-membership"
STATE_MACHINE_SAFETY = "state-machine-safety"
APPLY_ORDER = "apply-order"
LEADER_COMPLETENESS = "leader-completeness"
MONOTONICITY = "monotonicity"
DURABILITY = "durability"

KINDS = (
    ELECTION_SAFETY,
    ONE_VOTE_PER_TERM,
    LEADER_MEMBERSHIP,
    STATE_MACHINE_SAFETY,
    APPLY_ORDER,
    LEADER_COMPLETENESS,
    MONOTONICITY,
    DURABILITY,
)

#: Reported violations per kind; past it they are only counted. One divergence usually
#: repeats at every later index, and the first few carry all the evidence.
MAX_PER_KIND = 20


@dataclass
class Violation:
    """One broken invariant, with the events that prove it."""

    kind: str
    message: str
    nodes: list[str]
    term: int | None
    index: int | None
    ts: float | None
    events: list[Event]
    #: [node, boot] pairs involved, so the report can mark the right boot on the timeline.
    boots: list[list[Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "nodes": self.nodes,
            "term": self.term,
            "index": self.index,
            "ts": self.ts,
            "events": self.events,
            "boots": self.boots,
        }


@dataclass
class ViolationLog:
    """Collects violations, keeping the first MAX_PER_KIND of each kind and counting the rest."""

    reported: list[Violation] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, violation: Violation) -> None:
        n = self.counts.get(violation.kind, 0) + 1
        self.counts[violation.kind] = n
        if n <= MAX_PER_KIND:
            self.reported.append(violation)

    def suppressed(self) -> dict[str, int]:
        return {k: n - MAX_PER_KIND for k, n in self.counts.items() if n > MAX_PER_KIND}


def make(
    kind: str,
    message: str,
    events: list[Event],
    term: int | None = None,
    index: int | None = None,
) -> Violation:
    """A violation whose nodes, boots and ts are taken from its events (latest ts wins)."""
    nodes: list[str] = []
    boots: list[list[Any]] = []
    ts: float | None = None
    for ev in events:
        node = ev.get("node")
        if isinstance(node, str) and node not in nodes:
            nodes.append(node)
        pair = [node, ev.get("boot")]
        if node is not None and pair not in boots:
            boots.append(pair)
        t = ev.get("ts")
        if isinstance(t, int | float) and (ts is None or t > ts):
            ts = float(t)
    return Violation(kind, message, nodes, term, index, ts, events, boots)
