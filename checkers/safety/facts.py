"""Cluster-wide facts gathered while scanning every node, and the invariants that need them
all: election safety, one vote per term, state machine safety, leader completeness, and
leader membership where a node's configuration came from a snapshot."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from checkers.safety import violations as v
from checkers.safety.violations import Event, ViolationLog

#: Leader completeness is judged on the first few divergent indexes only: past them the logs
#: have already been shown to diverge, and each lookup scans every node's apply spans.
MAX_DIVERGENT_JUDGED = 200

#: index -> (term, digest, node, boot, ts, kind) of the first apply seen at that index.
FirstApply = tuple[int, str, str, int, float, Any]

#: (node, incarnation, boot): one life of a node. An incarnation is one data directory.
Life = tuple[str, int, int]


@dataclass(slots=True)
class ApplySpan:
    """Contiguous applies of one node during which its term and leadership did not change."""

    boot: int
    first: int
    last: int
    #: the node's current term: the entries were committed by a leader of this term or earlier
    term: int
    #: the highest term in which the node had been leader so far (0: never)
    led: int


@dataclass
class _Variant:
    """One of the different entries applied at a divergent index, and who applied it."""

    event: Event
    #: the lowest term of a node applying it: it was committed by a leader of this term or before
    committed_by: int
    committer: str
    #: the highest term led by a node applying it
    led: int
    leader: str


@dataclass
class PendingMembership:
    """A leader whose configuration came from a snapshot: judged once all conf events are in."""

    event: Event
    snapshot_event: Event
    snapshot_index: int


@dataclass
class ClusterFacts:
    log: ViolationLog = field(default_factory=ViolationLog)
    leaders: dict[int, dict[Life, Event]] = field(default_factory=dict)
    #: term -> leader named by some node's `lead` -> the first event naming it
    lead_claims: dict[int, dict[str, Event]] = field(default_factory=dict)
    votes: dict[tuple[str, int, int], Event] = field(default_factory=dict)
    applied: dict[int, FirstApply] = field(default_factory=dict)
    divergent: dict[int, list[tuple[str, int, Event]]] = field(default_factory=dict)
    spans: dict[str, list[ApplySpan]] = field(default_factory=dict)
    #: conf index -> (voters, event), from every node's conf events
    confs: dict[int, tuple[frozenset[str], Event]] = field(default_factory=dict)
    snapshot_checks: list[Event] = field(default_factory=list)
    pending_membership: list[PendingMembership] = field(default_factory=list)

    # -- recorded while scanning -------------------------------------------------------

    def leader(self, life: Life, ev: Event) -> None:
        self.leaders.setdefault(ev["term"], {}).setdefault(life, ev)

    def claim(self, term: int, lead: str, ev: Event) -> None:
        self.lead_claims.setdefault(term, {}).setdefault(lead, ev)

    def vote(self, node: str, incarnation: int, ev: Event, term: int, who: Any) -> None:
        """One vote per term: a node that granted `who` in `term` grants nobody else in it."""
        key = (node, incarnation, term)
        before = self.votes.get(key)
        if before is None:
            self.votes[key] = ev
            return
        had = before.get("for") if before.get("type") == "vote" else before.get("vote")
        if had != who:
            self.log.add(v.make(
                v.ONE_VOTE_PER_TERM,
                f"{node} voted for {had} (boot {before.get('boot')}) and for {who} "
                f"(boot {ev.get('boot')}) in term {term}",
                [before, ev], term=term))

    def diverged(self, index: int, first: FirstApply, ev: Event, node: str, boot: int) -> None:
        self.divergent.setdefault(index, []).append((node, boot, ev))
        self.log.add(v.make(
            v.STATE_MACHINE_SAFETY,
            f"index {index}: {node} (boot {boot}) applied term {ev['term']} digest "
            f"{ev['digest']}, but {first[2]} (boot {first[3]}) applied term {first[0]} "
            f"digest {first[1]}",
            [first_apply_event(index, first), ev], term=ev["term"], index=index))

    # -- judged once every node is scanned ---------------------------------------------

    def finish(self) -> None:
        self._election_safety()
        self._snapshot_terms()
        self._leader_completeness()
        self._membership_from_snapshots()

    def _election_safety(self) -> None:
        for term in sorted(set(self.leaders) | set(self.lead_claims)):
            holders = self.leaders.get(term, {})
            claims = self.lead_claims.get(term, {})
            names = {life[0] for life in holders}
            hearsay = {lead: ev for lead, ev in claims.items() if lead not in names}
            if len(holders) < 2 and len(names) + len(hearsay) < 2:
                continue
            parts = [f"{n} (boot {b})" for (n, _inc, b) in holders]
            parts += [f"{lead} (named leader by {ev.get('node')})" for lead, ev in hearsay.items()]
            evs = list(holders.values()) + list(hearsay.values())
            self.log.add(v.make(
                v.ELECTION_SAFETY,
                f"term {term} had {len(parts)} leaders: {', '.join(parts)}",
                evs, term=term))

    def _snapshot_terms(self) -> None:
        """A snapshot's (index, term) must match the entry every node applied at that index."""
        for ev in self.snapshot_checks:
            index, term = ev["index"], ev["term"]
            first = self.applied.get(index)
            if first is not None and first[0] != term:
                self.log.add(v.make(
                    v.STATE_MACHINE_SAFETY,
                    f"index {index}: {ev.get('node')} has a snapshot with last term {term}, but "
                    f"{first[2]} applied an entry of term {first[0]} there",
                    [first_apply_event(index, first), ev], term=term, index=index))

    def _leader_completeness(self) -> None:
        """An entry committed by term h is in the log of every leader of a later term: a node
        that led a term > h and applied something else at that index shows it was not."""
        for index in sorted(self.divergent)[:MAX_DIVERGENT_JUDGED]:
            first = self.applied[index]
            own = {(node, boot): ev for node, boot, ev in self.divergent[index]}
            variants: dict[tuple[int, str], _Variant] = {}
            for node, spans in self.spans.items():
                for sp in spans:
                    if not sp.first <= index <= sp.last:
                        continue
                    ev = own.get((node, sp.boot))
                    key = (first[0], first[1]) if ev is None else (ev["term"], ev["digest"])
                    var = variants.get(key)
                    if var is None:
                        real = ev if ev is not None else first_apply_event(index, first)
                        var = variants[key] = _Variant(real, sp.term, node, 0, node)
                    if sp.term < var.committed_by:
                        var.committed_by, var.committer = sp.term, node
                    if sp.led > var.led:
                        var.led, var.leader = sp.led, node
            self._judge_variants(index, variants)

    def _judge_variants(self, index: int, variants: dict[tuple[int, str], _Variant]) -> None:
        for key_v, var_v in variants.items():
            for key_w, var_w in variants.items():
                if key_v == key_w or var_w.led <= var_v.committed_by:
                    continue
                evs = [var_v.event, var_w.event]
                evs += [lev for life, lev in self.leaders.get(var_w.led, {}).items()
                        if life[0] == var_w.leader]
                self.log.add(v.make(
                    v.LEADER_COMPLETENESS,
                    f"index {index}: the entry of term {key_v[0]} (digest {key_v[1]}) was "
                    f"committed by term {var_v.committed_by} ({var_v.committer} applied it in "
                    f"that term), but {var_w.leader}, leader of term {var_w.led}, applied the "
                    f"entry of term {key_w[0]} (digest {key_w[1]}) there",
                    evs, term=var_w.led, index=index))
                return

    def _membership_from_snapshots(self) -> None:
        if not self.pending_membership:
            return
        indexes = sorted(self.confs)
        for p in self.pending_membership:
            pos = bisect.bisect_right(indexes, p.snapshot_index)
            if pos == 0:
                continue  # no conf event at or below the snapshot: configuration unknown
            voters, conf_ev = self.confs[indexes[pos - 1]]
            node = p.event["node"]
            if node not in voters:
                self.log.add(v.make(
                    v.LEADER_MEMBERSHIP,
                    f"{node} became leader of term {p.event['term']} while not a voter of its "
                    f"configuration (voters {sorted(voters)} as of its snapshot at index "
                    f"{p.snapshot_index})",
                    [conf_ev, p.snapshot_event, p.event], term=p.event["term"]))


def first_apply_event(index: int, first: FirstApply) -> Event:
    """The apply event kept (as a tuple, to save memory) for the first apply at `index`."""
    term, digest, node, boot, ts, kind = first
    return {"ts": ts, "node": node, "boot": boot, "type": "apply", "index": index,
            "term": term, "digest": digest, "kind": kind}
