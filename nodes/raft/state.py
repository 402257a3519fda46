"""The state of one Raft node and its transitions: terms, votes, roles, the log's
bookkeeping, elections and the commit rule.

Everything here is shared by every role. The role step functions (follower.py, candidate.py,
leader.py) take a RaftState; raft.py builds the top-level `Raft` on it, which steps messages
and ticks the clocks by dispatching to them. So the roles import this module and raft.py
imports the roles, never the other way round.
"""

from __future__ import annotations

import logging

from . import rand
from .config import Config
from .errors import InvariantViolated
from .log import RaftLog
from .progress import NO_LEASE_ACK, Progress
from .quorum import VoteResult
from .read_only import ReadOnly
from .rules import rules_for
from .tracker import ProgressTracker
from .types import (
    CAMPAIGN_TRANSFER,
    NONE,
    CampaignType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProgressState,
    ReadState,
    Snapshot,
    SoftState,
    StateType,
    vote_resp_type,
)

log = logging.getLogger(__name__)

MT = MessageType


_VOTE_MESSAGES = frozenset({MT.VOTE, MT.VOTE_RESP, MT.PRE_VOTE, MT.PRE_VOTE_RESP})
_TERMLESS_MESSAGES = frozenset({MT.PROP, MT.READ_INDEX})


class RaftState:
    """One node's Raft state; `raft.Raft` adds the message and tick dispatch."""

    __slots__ = (
        "id", "term", "vote", "raft_log", "tracker", "state", "is_learner", "msgs", "lead",
        "lead_transferee", "pending_conf_index", "uncommitted_size", "read_only",
        "election_elapsed", "heartbeat_elapsed", "check_quorum", "pre_vote",
        "heartbeat_timeout", "election_timeout", "randomized_election_timeout",
        "disable_proposal_forwarding", "step_down_on_removal", "max_msg_size",
        "max_uncommitted_size", "read_states", "pending_read_index_messages", "rules",
        "ticks", "lease_broken",
    )

    def __init__(self, c: Config) -> None:
        c.validate()
        self.id = c.id
        self.raft_log = RaftLog(c.storage, c.max_committed_size_per_ready)
        hs, cs = c.storage.initial_state()
        self.term = 0
        self.vote = NONE
        self.tracker = ProgressTracker(c.max_inflight_msgs)
        self.state = StateType.FOLLOWER
        self.is_learner = False
        self.msgs: list[Message] = []
        self.lead = NONE
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly(c.read_only_option)
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.check_quorum = c.check_quorum
        self.pre_vote = c.pre_vote
        self.heartbeat_timeout = c.heartbeat_tick
        self.election_timeout = c.election_tick
        self.randomized_election_timeout = c.election_tick
        self.disable_proposal_forwarding = c.disable_proposal_forwarding
        self.step_down_on_removal = c.step_down_on_removal
        self.max_msg_size = c.max_size_per_msg
        self.max_uncommitted_size = c.max_uncommitted_entries_size
        self.read_states: list[ReadState] = []
        self.pending_read_index_messages: list[Message] = []
        # Correct Raft, or the seeded bugs of c.bugs: the core asks it at each point a bug
        # can change.
        self.rules = rules_for(c.bugs)
        # Monotonic local clock (ticks, quiesced or not): anchors the leader lease.
        self.ticks = 0
        # A TimeoutNow was sent this term: forced campaigns ignore follower leases.
        self.lease_broken = False
        self.restore_conf(cs)
        if not hs.is_empty():
            self.load_state(hs)
        if c.applied > 0:
            self.raft_log.applied_to(c.applied)
        self.become_follower(self.term, NONE)

    # ------------------------------------------------------------------ state
    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.state)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.raft_log.committed)

    def load_state(self, hs: HardState) -> None:
        if hs.commit < self.raft_log.committed or hs.commit > self.raft_log.last_index():
            raise InvariantViolated(
                f"node {self.id}: hard state commit {hs.commit} out of range "
                f"[{self.raft_log.committed}, {self.raft_log.last_index()}]"
            )
        self.raft_log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def restore_conf(self, cs: ConfState) -> None:
        """Replace the tracker's membership with cs (start-up and snapshot restore)."""
        tr = ProgressTracker(self.tracker.max_inflight)
        nxt = self.raft_log.last_index() + 1
        for v in cs.voters:
            tr.add_voter(v)
            tr.progress[v] = Progress(nxt, tr.max_inflight)
        for lr in cs.learners:
            tr.add_learner(lr)
            tr.progress[lr] = Progress(nxt, tr.max_inflight, is_learner=True)
        self.tracker = tr
        me = tr.progress.get(self.id)
        self.is_learner = me is not None and me.is_learner
        if me is not None:
            me.match = nxt - 1

    def promotable(self) -> bool:
        """May this node campaign? Only a voter that is not installing a snapshot."""
        pr = self.tracker.progress.get(self.id)
        return pr is not None and not pr.is_learner and not self.raft_log.has_pending_snapshot()

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def reset_randomized_election_timeout(self) -> None:
        self.randomized_election_timeout = self.election_timeout + rand.intn(
            self.election_timeout
        )

    def in_lease(self) -> bool:
        """CheckQuorum lease: we heard from a live leader less than an election timeout ago."""
        return (
            self.check_quorum
            and self.lead != NONE
            and self.election_elapsed < self.election_timeout
        )

    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.tracker.reset_votes()
        last = self.raft_log.last_index()
        for pid, pr in self.tracker.progress.items():
            pr.match = last if pid == self.id else 0
            pr.next = last + 1
            pr.state = ProgressState.PROBE
            pr.pending_snapshot = 0
            pr.recent_active = False
            pr.probe_sent = False
            pr.release_inflights()
            pr.lease_ack = NO_LEASE_ACK
        self.lease_broken = False
        self.pending_conf_index = 0
        self.uncommitted_size = 0
        # Reads waiting on a leadership that ended are dropped; their clients retry.
        if self.pending_read_index_messages:
            self.pending_read_index_messages = []
        if self.read_only.pending or self.read_only.queue:
            self.read_only = ReadOnly(self.read_only.option)

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    # ------------------------------------------------------------------ roles
    def become_follower(self, term: int, lead: int) -> None:
        self.reset(term)
        self.lead = lead
        self.state = StateType.FOLLOWER
        log.debug("node %d became follower at term %d (lead %d)", self.id, self.term, lead)

    def become_candidate(self) -> None:
        if self.state == StateType.LEADER:
            raise InvariantViolated(f"node {self.id}: invalid transition leader -> candidate")
        self.reset(self.term + 1)
        self.vote = self.id
        self.state = StateType.CANDIDATE
        log.debug("node %d became candidate at term %d", self.id, self.term)

    def become_pre_candidate(self) -> None:
        if self.state == StateType.LEADER:
            raise InvariantViolated(
                f"node {self.id}: invalid transition leader -> pre-candidate"
            )
        # PreVote changes neither term nor vote: a failed pre-election disrupts nobody.
        self.tracker.reset_votes()
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE
        log.debug("node %d became pre-candidate at term %d", self.id, self.term)

    def become_leader(self) -> None:
        if self.state == StateType.FOLLOWER:
            raise InvariantViolated(f"node {self.id}: invalid transition follower -> leader")
        self.reset(self.term)
        self.lead = self.id
        self.state = StateType.LEADER
        me = self.tracker.progress.get(self.id)
        if me is not None:
            me.become_replicate()
            me.recent_active = True  # the leader is always active to itself
        # Conservatively treat any entry in the log as a possibly pending conf change.
        self.pending_conf_index = self.raft_log.last_index()
        if not self.append_entry([Entry(0, 0)]):
            raise InvariantViolated(f"node {self.id}: empty entry was dropped")
        # The empty entry does not count against the uncommitted-size limit.
        self.uncommitted_size = 0
        log.debug("node %d became leader at term %d", self.id, self.term)

    # ------------------------------------------------------------------ sending
    def send(self, m: Message) -> None:
        if m.from_ == NONE:
            # Forwarded requests (TransferLeader names the transferee in from_) keep theirs.
            m.from_ = self.id
        if m.type in _VOTE_MESSAGES:
            if m.term == 0:
                # Vote messages carry the term they are about (ours + 1 for PreVote).
                raise InvariantViolated(f"node {self.id}: {m.type.name} sent without a term")
        else:
            if m.term != 0:
                raise InvariantViolated(f"node {self.id}: {m.type.name} with preset term")
            # Proposals and forwarded reads travel as local messages (term 0).
            if m.type not in _TERMLESS_MESSAGES:
                m.term = self.term
        self.msgs.append(m)

    # ------------------------------------------------------------------ log
    def append_entry(self, es: list[Entry]) -> bool:
        li = self.raft_log.last_index()
        ents = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(es)]
        if not self.increase_uncommitted_size(ents):
            log.debug("node %d: uncommitted size limit reached, proposal dropped", self.id)
            return False
        li = self.raft_log.append(ents)
        me = self.tracker.progress.get(self.id)
        if me is not None:
            me.maybe_update(li)
        self.maybe_commit()
        return True

    def maybe_commit(self) -> bool:
        """Advance commit to the quorum-acknowledged index, if that entry is of our term."""
        rl = self.raft_log
        mci = self.tracker.committed()
        if mci <= rl.committed:
            return False
        # Figure 8: never commit an old-term entry by counting replicas; it becomes committed
        # indirectly once an entry of the current term is.
        if not self.rules.may_commit(rl, mci, self.term):
            return False
        rl.commit_to(mci)
        return True

    def increase_uncommitted_size(self, ents: list[Entry]) -> bool:
        s = sum(len(e.data) for e in ents)
        if (
            self.max_uncommitted_size > 0
            and self.uncommitted_size > 0
            and s > 0
            and self.uncommitted_size + s > self.max_uncommitted_size
        ):
            return False
        self.uncommitted_size += s
        return True

    def reduce_uncommitted_size(self, ents: list[Entry]) -> None:
        if self.uncommitted_size == 0:
            return  # fast path for followers, which do not track it
        s = sum(len(e.data) for e in ents)
        self.uncommitted_size = max(0, self.uncommitted_size - s)

    # ------------------------------------------------------------------ elections
    def hup(self, t: CampaignType) -> None:
        if self.state == StateType.LEADER:
            log.debug("node %d ignoring Hup: already leader", self.id)
            return
        if not self.promotable():
            log.debug("node %d is not promotable and cannot campaign", self.id)
            return
        if self.has_unapplied_conf_change():
            log.debug("node %d: committed conf change not yet applied, no campaign", self.id)
            return
        self.campaign(t)

    def has_unapplied_conf_change(self) -> bool:
        rl = self.raft_log
        if rl.applied >= rl.committed:
            return False
        lo = max(rl.applied + 1, rl.first_index())
        for e in rl.slice(lo, rl.committed + 1):
            if e.type == EntryType.CONF_CHANGE:
                return True
        return False

    def campaign(self, t: CampaignType) -> None:
        if t == CampaignType.PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg = MT.PRE_VOTE
            term = self.term + 1  # the term we would campaign at; ours does not change
        else:
            self.become_candidate()
            vote_msg = MT.VOTE
            term = self.term
        if self.poll(self.id, vote_resp_type(vote_msg), True) == VoteResult.WON:
            # Single-voter cluster: we won at once.
            if t == CampaignType.PRE_ELECTION:
                self.campaign(CampaignType.ELECTION)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if t == CampaignType.TRANSFER else b""
        last_index = self.raft_log.last_index()
        last_term = self.raft_log.last_term()
        for v in self.tracker.voters:
            if v == self.id:
                continue
            self.send(
                Message(vote_msg, to=v, term=term, index=last_index, log_term=last_term,
                        context=ctx)
            )

    def poll(self, node: int, t: MessageType, granted: bool) -> VoteResult:
        self.tracker.record_vote(node, granted)
        _, _, res = self.tracker.tally_votes()
        return res

    # ------------------------------------------------------------------ ready support
    def advance(self, committed: list[Entry], entries: list[Entry], snap: Snapshot) -> None:
        if committed:
            self.reduce_uncommitted_size(committed)
            self.raft_log.applied_to(committed[-1].index)
        if entries:
            last = entries[-1]
            self.raft_log.stable_to(last.index, last.term)
        if not snap.is_empty():
            self.raft_log.stable_snap_to(snap.metadata.index)
            # The application restored its state machine from the snapshot.
            if snap.metadata.index > self.raft_log.applied:
                self.raft_log.applied_to(snap.metadata.index)
