"""Builders of synthetic raftkv node events for the safety checker tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


def digest(data: str) -> str:
    return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass
class Run:
    """Events of one run, written in the order the nodes would write them; ts ticks by 1 ms."""

    nodes: tuple[str, ...] = ("n1", "n2", "n3")
    events: dict[str, list[Event]] = field(default_factory=dict)
    ts: float = 1_700_000_000.0
    boots: dict[str, int] = field(default_factory=dict)
    #: index -> term of the entries replicate() committed, for replays after a restart
    log: dict[int, int] = field(default_factory=dict)
    #: nodes whose last start was refused: their next boot keeps the refused boot's number
    refused: dict[str, bool] = field(default_factory=dict)

    def emit(self, node: str, type_: str, **fields: Any) -> Event:
        self.ts += 0.001
        ev = {"ts": round(self.ts, 3), "node": node, "boot": self.boots.get(node, 1),
              "type": type_, **fields}
        self.events.setdefault(node, []).append(ev)
        return ev

    def boot(self, node: str, term: int = 0, vote: str | None = None, commit: int = 0,
             voters: list[str] | None = None, snapshot_index: int = 0,
             fresh: bool = False, last_index: int | None = None) -> Event:
        if fresh:
            self.boots[node] = 1
        elif node in self.events and not self.refused.pop(node, False):
            self.boots[node] = self.boots.get(node, 1) + 1
        extra = {} if last_index is None else {"last_index": last_index}
        return self.emit(node, "boot", term=term, vote=vote, commit=commit,
                         voters=list(self.nodes) if voters is None else voters, learners=[],
                         snapshot_index=snapshot_index, **extra)

    def refuse(self, node: str, reason: str) -> Event:
        """A start refused on the node's data: it names the boot it would have been, which
        the next successful start then is (raftkv counts boots only once recovered)."""
        if not self.refused.get(node):
            self.boots[node] = self.boots.get(node, 1) + 1
            self.refused[node] = True
        return self.emit(node, "refuse", reason=reason)

    def role(self, node: str, role: str, term: int, lead: str | None = None) -> Event:
        return self.emit(node, "role", role=role, term=term, lead=lead)

    def vote(self, node: str, term: int, for_: str) -> Event:
        return self.emit(node, "vote", term=term, **{"for": for_})

    def commit(self, node: str, index: int, term: int) -> Event:
        return self.emit(node, "commit", index=index, term=term)

    def apply(self, node: str, index: int, term: int, data: str | None = None,
              kind: str = "normal") -> Event:
        return self.emit(node, "apply", index=index, term=term,
                         digest=digest(data if data is not None else f"e{index}"), kind=kind)

    def conf(self, node: str, index: int, voters: list[str]) -> Event:
        return self.emit(node, "conf", index=index, voters=voters, learners=[])

    def snapshot(self, node: str, index: int, term: int, source: str = "leader") -> Event:
        return self.emit(node, "snapshot", index=index, term=term, source=source)

    # -- common episodes -----------------------------------------------------------------

    def elect(self, leader: str, term: int, voters: list[str] | None = None) -> None:
        """`leader` campaigns in `term`, everyone votes for it, it leads, the others follow."""
        members = voters if voters is not None else list(self.nodes)
        self.role(leader, "candidate", term)
        self.vote(leader, term, leader)
        for n in members:
            if n != leader:
                self.role(n, "follower", term)
                self.vote(n, term, leader)
        self.role(leader, "leader", term, leader)
        for n in members:
            if n != leader:
                self.role(n, "follower", term, leader)

    def replicate(self, first: int, last: int, term: int, nodes: list[str] | None = None) -> None:
        """Entries first..last of `term` committed and applied on `nodes` (default: all)."""
        for i in range(first, last + 1):
            self.log[i] = term
        for n in nodes if nodes is not None else list(self.nodes):
            self.commit(n, last, term)
            for i in range(first, last + 1):
                self.apply(n, i, term)

    def replay(self, node: str, first: int, last: int) -> None:
        """A restarted node applies committed entries first..last again."""
        for i in range(first, last + 1):
            self.apply(node, i, self.log[i])


def healthy(nodes: tuple[str, ...] = ("n1", "n2", "n3")) -> Run:
    """A correct run: boot, n1 leads term 1 with entries 1..5, n2 leads term 2 with 6..8."""
    run = Run(nodes)
    for n in nodes:
        run.boot(n)
    run.elect("n1", 1)
    run.replicate(1, 5, 1)
    run.elect("n2", 2)
    run.replicate(6, 8, 2)
    return run
