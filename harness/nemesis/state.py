"""What the nemesis knows while faults are in effect: which nodes are killed, paused, removed,
each node's clock, whether the network is cut, and the undo data of each active fault.

Fault modules read and change this state; the final heal undoes what it records."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.nemesis.clocks import NodeClock
from harness.nemesis.schedule import FaultEvent
from harness.protocols import DB, HarnessError, LeaderLookup, Provider


@dataclass
class ActiveFault:
    """A fault that started: its event and what its stop needs to undo it."""

    event: FaultEvent
    undo: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.event.kind


@dataclass
class NemesisState:
    db: DB
    provider: Provider
    nodes: list[str]
    max_clock_offset: float = 10.0
    killed: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)
    #: Each node's clock as the nemesis set it (harness.nemesis.clocks); absent: true time.
    clocks: dict[str, NodeClock] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    #: nodes whose disk a corrupt fault changed this run (never more than a minority)
    corrupted: set[str] = field(default_factory=set)
    #: nodes whose faultfs fails writes with ENOSPC now
    disk_full: set[str] = field(default_factory=set)
    partitioned: bool = False
    #: The grudge of each active partition fault (by id); the network gets their union.
    grudges: dict[int, Mapping[str, set[str]]] = field(default_factory=dict)
    #: Message rules set on the provider's proxies, (src, dst), cleared at heal.
    rules: list[tuple[str, str]] = field(default_factory=list)
    #: The config's nemesis section: parameters of fault families (nemesis.link_delay_ms...).
    opts: Mapping[str, Any] = field(default_factory=dict)
    #: Records one step of a fault that plays several (drift-isolate's isolation, from its
    #: `during`): step(f, fn) runs fn under the nemesis's lock and records its value as the
    #: nemesis op `f` (with the error, if fn raises HarnessError). Set by the Nemesis.
    step: Callable[[str, Callable[[], dict[str, Any]]], None] | None = None

    def cut(self, key: int, grudge: Mapping[str, set[str]] | None) -> None:
        """Set (or, with None, drop) one fault's grudge and apply the union of all of them:
        overlapping partitions compose instead of replacing each other."""
        if grudge is None:
            self.grudges.pop(key, None)
        else:
            self.grudges[key] = grudge
        union: dict[str, set[str]] = {}
        for g in self.grudges.values():
            for dst, srcs in g.items():
                union.setdefault(dst, set()).update(srcs)
        if union:
            self.provider.partition(union)
        else:
            self.provider.heal()
        self.partitioned = bool(union)

    def members(self) -> list[str]:
        return [n for n in self.nodes if n not in self.removed]

    def live_members(self) -> list[str]:
        return [n for n in self.members() if n not in self.killed and n not in self.paused]

    def leader(self) -> str | None:
        return self.db.leader() if isinstance(self.db, LeaderLookup) else None

    def leader_or(self, rng: random.Random) -> str:
        lead = self.leader()
        return lead if lead is not None else rng.choice(self.members())

    def targets(self, kind: str, rng: random.Random) -> list[str]:
        """The nodes a kind of fault hits: one, the leader, a minority, or all members."""
        members = self.members()
        if kind == "leader":
            return [self.leader_or(rng)]
        if kind == "one":
            return [rng.choice(members)]
        if kind == "minority":
            return sorted(rng.sample(members, max(1, (len(members) - 1) // 2)))
        if kind == "all":
            return list(members)
        raise HarnessError(f"nemesis: unknown target kind {kind!r}")
