"""One streaming pass over one node's events: the per-node invariants (apply order,
monotonicity, durability across boots, leader membership) and the facts the cluster-wide
invariants need (leaders, votes, applied entries). The apply and commit branches are inlined
in the loop because they are nearly all of a long run's events."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from checkers.safety import violations as v
from checkers.safety.facts import ApplySpan, ClusterFacts, PendingMembership
from checkers.safety.timeline import Timeline
from checkers.safety.violations import Event

NOT_YET = -1


class EventFormatError(Exception):
    """A node event lacking a field the contract requires (message names node and event)."""


@dataclass
class NodeSummary:
    node: str
    events: int
    applies: int
    boots: int
    max_term: int
    max_applied: int
    timeline: Timeline
    #: starts refused on the node's own data: node, boot, ts, reason, and `excused` when the
    #: nemesis had altered the node's disk since its last boot (a corrupt fault)
    refusals: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class NodeState:
    node: str
    facts: ClusterFacts
    timeline: Timeline = field(default_factory=Timeline)
    incarnation: int = 0
    boot: int = 0
    boots_seen: int = 0
    # -- this boot ---------------------------------------------------------------------
    role_term: int = 0
    hs_term: int = 0  # term of the hard state (vote and commit events)
    term: int = 0  # max of both: the node's current term
    commit: int = 0
    commit_ev: Event | None = None
    voters: frozenset[str] | None = None
    config_ev: Event | None = None  # the boot or conf event the voters come from
    config_snapshot: Event | None = None  # set when the config came with an installed snapshot
    snapshot_index: int | None = None
    expect: int = NOT_YET  # next index this boot must apply
    span_start: int = NOT_YET
    # -- across boots of one incarnation -----------------------------------------------
    led: int = 0
    durable_term: int = 0
    durable_term_ev: Event | None = None
    durable_vote: tuple[int, Any, Event] | None = None
    durable_commit: int = 0
    durable_commit_ev: Event | None = None
    #: the highest index a boot of this incarnation applied: durable on this node (raftkv
    #: applies an entry only once its own fsync of it is done), so a later boot's log must
    #: reach it; with the event citing it (the last apply seen, or None)
    durable_applied: int = 0
    durable_applied_ev: Event | None = None
    spans: list[ApplySpan] = field(default_factory=list)
    max_term: int = 0
    max_applied: int = 0
    #: wall-clock times (sorted) at which the nemesis altered this node's disk; each one
    #: ends what the node had made durable, as a wipe does (see on_altered)
    altered: list[float] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)

    # -- apply spans (for leader completeness) -----------------------------------------

    def close_span(self) -> None:
        if self.span_start != NOT_YET and self.expect - 1 >= self.span_start:
            self.spans.append(ApplySpan(self.boot, self.span_start, self.expect - 1,
                                        self.term, self.led))
            if self.expect - 1 > self.max_applied:
                self.max_applied = self.expect - 1
        self.span_start = self.expect

    def raise_term(self, term: int) -> None:
        if term > self.term:
            self.close_span()
            self.term = term
            if term > self.max_term:
                self.max_term = term

    # -- boots -------------------------------------------------------------------------

    def on_boot(self, ev: Event, prev: Event | None) -> None:
        boot, term, commit, vote = ev["boot"], ev["term"], ev["commit"], ev.get("vote")
        self._end_boot(prev)
        altered = self.on_altered(ev)
        if boot <= self.boot:
            # Boot numbers restart with a fresh data directory: a new member, nothing durable.
            if not altered:
                self.incarnation += 1
                self._forget_durable()
        elif not altered:
            self._check_recovery(ev, term, vote, commit)
        self._start_boot(boot, term, commit, ev)
        voters = ev.get("voters")
        self.voters = frozenset(voters) if voters is not None else None
        self.config_ev = ev
        self.snapshot_index = ev.get("snapshot_index")
        if vote is not None:
            self.facts.vote(self.node, self.incarnation, ev, term, vote)
            if self.durable_vote is None or term >= self.durable_vote[0]:
                self.durable_vote = (term, vote, ev)
        self._durable(term, commit, ev)
        self.timeline.enter(ev["ts"], "follower", term, boot)

    def implicit_boot(self, ev: Event, prev: Event | None) -> None:
        """Events of a new boot whose boot event was lost (the node was killed before flushing)."""
        self._end_boot(prev)
        if not self.on_altered(ev) and ev["boot"] <= self.boot:
            self.incarnation += 1
            self._forget_durable()
        self._start_boot(ev["boot"], 0, 0, None)
        self.voters = None
        self.config_ev = None
        self.snapshot_index = None

    def _end_boot(self, prev: Event | None) -> None:
        if self.expect != NOT_YET and self.expect - 1 > self.durable_applied:
            self.durable_applied = self.expect - 1
            last = prev is not None and prev.get("type") == "apply" and prev.get("index") == self.expect - 1
            self.durable_applied_ev = prev if last else None
        self.close_span()
        if prev is not None:
            self.timeline.close(prev["ts"])

    def on_altered(self, ev: Event) -> bool:
        """Whether the nemesis altered the node's disk (a corrupt fault, while it was down)
        before `ev`, the first event of a boot or a refused start: then nothing it made
        durable before is a promise any more, and it counts as a new member (its durable
        term, vote, commit and log are forgotten, its votes start afresh)."""
        ts = ev.get("ts")
        if not self.altered or not isinstance(ts, int | float) or self.altered[0] > ts:
            return False
        while self.altered and self.altered[0] <= ts:
            self.altered.pop(0)
        self.incarnation += 1
        self._forget_durable()
        return True

    def on_refuse(self, ev: Event, prev: Event | None) -> None:
        """The node refused to start on its own data (`reason`). After a power loss or a
        crash that is data loss: it had made durable what it can no longer read. After the
        nemesis altered its disk it is the right answer (recorded, not a violation)."""
        if prev is not None and prev.get("type") != "refuse":
            self._end_boot(prev)
        # excused: its disk was altered since, or it had made nothing durable it could lose
        excused = self.on_altered(ev) or not (
            self.durable_term or self.durable_commit or self.durable_applied or self.durable_vote)
        self.refusals.append({"node": self.node, "boot": ev.get("boot"), "ts": ev.get("ts"),
                              "reason": ev.get("reason"), "excused": excused})
        if excused:
            return
        what = [f"term {self.durable_term}"] if self.durable_term else []
        if self.durable_commit:
            what.append(f"commit {self.durable_commit}")
        if self.durable_applied:
            what.append(f"applied index {self.durable_applied}")
        evidence = [e for e in (self.durable_commit_ev or self.durable_term_ev, ev) if e is not None]
        self.facts.log.add(v.make(
            v.DURABILITY,
            f"{self.node} refused to start on its own data ({ev.get('reason')}) although nothing "
            f"altered its disk; boot {self.boot} had made {', '.join(what) or 'its state'} durable",
            evidence, term=self.durable_term or None, index=self.durable_commit or None))

    def _start_boot(self, boot: int, term: int, commit: int, ev: Event | None) -> None:
        self.boot = boot
        self.boots_seen += 1
        self.role_term = self.hs_term = self.term = term
        self.commit, self.commit_ev = commit, ev
        self.config_snapshot = None
        self.expect = self.span_start = NOT_YET
        if term > self.max_term:
            self.max_term = term

    def _forget_durable(self) -> None:
        self.led = self.durable_term = self.durable_commit = self.durable_applied = 0
        self.durable_term_ev = self.durable_commit_ev = self.durable_applied_ev = None
        self.durable_vote = None

    def _check_recovery(self, ev: Event, term: int, vote: Any, commit: int) -> None:
        """A boot recovers at least the term, vote and commit its earlier boots made durable."""
        log, node, boot = self.facts.log, self.node, ev["boot"]
        if term < self.durable_term and self.durable_term_ev is not None:
            log.add(v.make(
                v.DURABILITY,
                f"{node} boot {boot} recovered term {term}, but boot "
                f"{self.durable_term_ev.get('boot')} had made term {self.durable_term} durable",
                [self.durable_term_ev, ev], term=self.durable_term))
        dv = self.durable_vote
        if dv is not None and dv[0] == term and vote != dv[1]:
            log.add(v.make(
                v.DURABILITY,
                f"{node} boot {boot} recovered vote {vote} in term {term}, but boot "
                f"{dv[2].get('boot')} had durably voted for {dv[1]} in that term",
                [dv[2], ev], term=term))
        if commit < self.durable_commit and self.durable_commit_ev is not None:
            log.add(v.make(
                v.DURABILITY,
                f"{node} boot {boot} recovered commit {commit}, but boot "
                f"{self.durable_commit_ev.get('boot')} had made commit {self.durable_commit} "
                f"durable",
                [self.durable_commit_ev, ev], index=self.durable_commit))
        last = ev.get("last_index")
        if isinstance(last, int) and last < self.durable_applied:
            log.add(v.make(
                v.DURABILITY,
                f"{node} boot {boot} recovered its log up to index {last}, but an earlier boot "
                f"had applied index {self.durable_applied} (an entry is applied only once it is "
                f"durable on the node that applies it)",
                [e for e in (self.durable_applied_ev, ev) if e is not None], index=self.durable_applied))

    def _durable(self, term: int, commit: int, ev: Event) -> None:
        if term > self.durable_term:
            self.durable_term, self.durable_term_ev = term, ev
        if commit > self.durable_commit:
            self.durable_commit, self.durable_commit_ev = commit, ev

    # -- hard state --------------------------------------------------------------------

    def on_commit(self, ev: Event) -> None:
        index, term = ev["index"], ev["term"]
        self._hard_state_term(ev, term)
        if index < self.commit:
            self.facts.log.add(v.make(
                v.MONOTONICITY,
                f"{self.node} boot {self.boot}: commit went back from {self.commit} to {index}",
                [e for e in (self.commit_ev, ev) if e is not None], index=index))
            return
        self.commit, self.commit_ev = index, ev
        self._durable(term, index, ev)

    def on_vote(self, ev: Event) -> None:
        term, who = ev["term"], ev["for"]
        self._hard_state_term(ev, term)
        self.facts.vote(self.node, self.incarnation, ev, term, who)
        if self.durable_vote is None or term >= self.durable_vote[0]:
            self.durable_vote = (term, who, ev)
        self._durable(term, 0, ev)

    def _hard_state_term(self, ev: Event, term: int) -> None:
        if term < self.hs_term:
            self.facts.log.add(v.make(
                v.MONOTONICITY,
                f"{self.node} boot {self.boot}: hard state term went back from {self.hs_term} "
                f"to {term} ({ev['type']} event)",
                [ev], term=term))
            return
        self.hs_term = term
        self.raise_term(term)

    # -- soft state --------------------------------------------------------------------

    def on_role(self, ev: Event) -> None:
        term, role, node = ev["term"], ev["role"], self.node
        if term < self.role_term:
            self.facts.log.add(v.make(
                v.MONOTONICITY,
                f"{node} boot {self.boot}: term went back from {self.role_term} to {term} "
                f"(became {role})",
                [ev], term=term))
        else:
            self.role_term = term
            self.raise_term(term)
        if role == "leader":
            self.facts.leader((node, self.incarnation, self.boot), ev)
            self._check_membership(ev)
            if term > self.led:
                self.close_span()
                self.led = term
        lead = ev.get("lead")
        if lead is not None and lead != node:
            self.facts.claim(term, lead, ev)
        self.timeline.enter(ev["ts"], role, term, self.boot)

    def _check_membership(self, ev: Event) -> None:
        """A leader must be a voter of the configuration in force on it."""
        if self.config_snapshot is not None:
            self.facts.pending_membership.append(PendingMembership(
                ev, self.config_snapshot, self.config_snapshot["index"]))
            return
        if self.voters is None or self.node in self.voters:
            return
        where = "its boot" if self.config_ev is None or self.config_ev.get("type") == "boot" \
            else f"conf at index {self.config_ev.get('index')}"
        self.facts.log.add(v.make(
            v.LEADER_MEMBERSHIP,
            f"{self.node} became leader of term {ev['term']} while not a voter of its "
            f"configuration (voters {sorted(self.voters)} from {where})",
            [e for e in (self.config_ev, ev) if e is not None], term=ev["term"]))

    def on_conf(self, ev: Event) -> None:
        voters = frozenset(ev["voters"])
        self.voters, self.config_ev, self.config_snapshot = voters, ev, None
        self.facts.confs.setdefault(ev["index"], (voters, ev))

    def on_snapshot(self, ev: Event) -> None:
        self.facts.snapshot_checks.append(ev)
        if ev.get("source") != "leader":
            return
        index = ev["index"]
        if self.expect != NOT_YET and index < self.expect - 1:
            self.facts.log.add(v.make(
                v.APPLY_ORDER,
                f"{self.node} boot {self.boot} installed a snapshot at index {index} after "
                f"applying up to {self.expect - 1}",
                [ev], index=index))
            return
        self.close_span()
        self.expect = self.span_start = index + 1
        self.config_snapshot = ev  # its configuration is the one in force at its index
        if index > self.max_applied:
            self.max_applied = index

    # -- applies -----------------------------------------------------------------------

    def apply_jump(self, ev: Event, index: int, prev: Event | None) -> None:
        """An apply that does not follow the previous one of this boot."""
        if ev["boot"] != self.boot:
            self.implicit_boot(ev, prev)
        expect, node, boot = self.expect, self.node, self.boot
        msg = None
        if expect == NOT_YET:
            s = self.snapshot_index
            if s is not None and index <= s:
                msg = f"{node} boot {boot} applied index {index}, already in its snapshot at {s}"
        elif index < expect:
            msg = f"{node} boot {boot} applied index {index} after {expect - 1}"
        else:
            missed = f"{expect}" if index - 1 == expect else f"{expect}..{index - 1}"
            msg = f"{node} boot {boot} applied index {index} after {expect - 1}, skipping {missed}"
        if msg is not None:
            self.facts.log.add(v.make(v.APPLY_ORDER, msg,
                                      [e for e in (prev, ev) if e is not None], index=index))
        self.close_span()
        self.span_start = index

    def on_other(self, kind: str, ev: Event, prev: Event | None) -> None:
        if kind == "boot":
            self.on_boot(ev, prev)
            return
        if kind == "refuse":  # names the boot it would have been: not a boot of its own
            self.on_refuse(ev, prev)
            return
        if ev["boot"] != self.boot:
            self.implicit_boot(ev, prev)
        if kind == "role":
            self.on_role(ev)
        elif kind == "vote":
            self.on_vote(ev)
        elif kind == "conf":
            self.on_conf(ev)
        elif kind == "snapshot":
            self.on_snapshot(ev)
        # Unknown kinds are newer additions to the contract: not this checker's business.


def scan_node(node: str, events: Iterable[Event], facts: ClusterFacts,
              altered: Iterable[float] = ()) -> NodeSummary:
    """Check one node's events in order and record what the cluster-wide checks need.
    `altered`: wall-clock times at which the nemesis altered the node's disk.

    The apply branch keeps the next expected index and the boot in locals (synced with the
    NodeState around every other event): it runs millions of times in a long run.
    """
    st = NodeState(node, facts, altered=sorted(altered))
    applied = facts.applied
    others = applies = 0
    expect, boot = st.expect, st.boot
    prev: Event | None = None
    ev: Any = None
    try:
        for ev in events:
            kind = ev["type"]
            if kind == "apply":
                applies += 1
                index = ev["index"]
                if index != expect:
                    st.expect = expect
                    st.apply_jump(ev, index, prev)
                    boot = st.boot
                expect = index + 1
                first = applied.get(index)
                if first is None:
                    applied[index] = (ev["term"], ev["digest"], node, boot, ev["ts"], ev.get("kind"))
                elif first[0] != ev["term"] or first[1] != ev["digest"]:
                    facts.diverged(index, first, ev, node, boot)
                prev = ev
                continue
            others += 1
            st.expect = expect
            if kind == "commit":
                if ev["boot"] != boot:
                    st.implicit_boot(ev, prev)
                st.on_commit(ev)
            else:
                st.on_other(kind, ev, prev)
            expect, boot = st.expect, st.boot
            prev = ev
    except KeyError as e:
        raise EventFormatError(f"node {node}: event lacks field {e}: {clip_event(ev)}") from e
    except TypeError as e:
        raise EventFormatError(f"node {node}: malformed event ({e}): {clip_event(ev)}") from e
    st.expect = expect
    st.close_span()
    if prev is not None:
        st.timeline.close(prev["ts"])
    facts.spans[node] = st.spans
    return NodeSummary(node, others + applies, applies, st.boots_seen, st.max_term,
                       st.max_applied, st.timeline, st.refusals)


def clip_event(ev: Any, width: int = 160) -> str:
    text = repr(ev)
    return text if len(text) <= width else text[:width] + "..."
