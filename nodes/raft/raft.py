"""The Raft state machine as the application steps and ticks it.

Structure and names follow etcd's raft.go: one top-level `step` handles what every role
shares (terms, Vote and PreVote requests, Hup), then dispatches to the step function of the
node's role: follower.py, candidate.py (candidate and pre-candidate) or leader.py. The state
and its transitions live in state.py, which the role modules build on; this module sits on
top of them all, so the dispatch table needs no circular import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from . import confchange
from .candidate import step_candidate
from .follower import step_follower
from .leader import step_leader
from .state import RaftState
from .types import (
    CAMPAIGN_TRANSFER,
    NONE,
    CampaignType,
    ConfChange,
    ConfState,
    Message,
    MessageType,
    StateType,
    vote_resp_type,
)

log = logging.getLogger(__name__)

MT = MessageType

StepFn = Callable[[RaftState, Message], None]

# The step function of each role, indexed by StateType's value (a tuple: fixed, and cheap to
# index on every message).
_ROLE_STEPS: tuple[StepFn, ...] = tuple(
    {
        StateType.FOLLOWER: step_follower,
        StateType.PRE_CANDIDATE: step_candidate,
        StateType.CANDIDATE: step_candidate,
        StateType.LEADER: step_leader,
    }[StateType(i)]
    for i in range(len(StateType))
)

_LEADER = StateType.LEADER


class Raft(RaftState):
    """A Raft node: `step` for messages, `tick`/`tick_quiesced` for time (see RaftState)."""

    __slots__ = ()

    # ------------------------------------------------------------------ ticks
    def tick(self) -> None:
        self.ticks += 1
        if self.state == _LEADER:
            self.tick_heartbeat()
        else:
            self.tick_election()

    def tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(MT.HUP, from_=self.id))

    def tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, from_=self.id))
            # A transfer that did not finish within an election timeout is abandoned.
            if self.state == StateType.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.state != StateType.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, from_=self.id))

    def tick_quiesced(self) -> None:
        """Advance only the clocks: no heartbeats, no elections, but leases expire."""
        self.ticks += 1
        self.election_elapsed += 1

    # ------------------------------------------------------------------ step
    def step(self, m: Message) -> None:
        """Handle one message: terms and votes here for every role, the rest per role."""
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                if not force and self.in_lease():
                    # We heard from a leader within the minimum election timeout: ignore a
                    # possibly disruptive candidate (neither term change nor vote).
                    log.debug("node %d ignoring %s from %d at term %d: in lease", self.id,
                              m.type.name, m.from_, m.term)
                    return
            if m.type == MT.PRE_VOTE:
                pass  # never change our term for a PreVote
            elif m.type == MT.PRE_VOTE_RESP and not m.reject:
                pass  # granted PreVote carries the future term; bump only when we win
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.from_)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (MT.HEARTBEAT, MT.APP):
                # A stale leader (e.g. one that was partitioned) learns our term from this,
                # instead of our ignoring it forever while it ignores our campaigns.
                self.send(Message(MT.APP_RESP, to=m.from_))
            elif m.type == MT.PRE_VOTE:
                # Reject explicitly so that a pre-candidate can learn our higher term.
                self.send(Message(MT.PRE_VOTE_RESP, to=m.from_, term=self.term, reject=True))
            return

        if m.type == MT.HUP:
            self.hup(CampaignType.PRE_ELECTION if self.pre_vote else CampaignType.ELECTION)
        elif m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote(m)
        else:
            _ROLE_STEPS[self.state](self, m)

    def _handle_vote(self, m: Message) -> None:
        can_vote = (
            self.vote == m.from_
            # We know no leader and have not voted in this term.
            or (self.vote == NONE and self.lead == NONE)
            # A PreVote for a future term.
            or (m.type == MT.PRE_VOTE and m.term > self.term)
        )
        up_to_date = self.rules.vote_log_ok(self.raft_log, m.index, m.log_term)
        resp = vote_resp_type(m.type)
        if can_vote and up_to_date:
            log.debug("node %d granted %s to %d at term %d", self.id, m.type.name, m.from_,
                      m.term)
            # Answer with the request's term: for PreVote that is a future term of ours.
            self.send(Message(resp, to=m.from_, term=m.term))
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.from_
        else:
            self.send(Message(resp, to=m.from_, term=self.term, reject=True))

    # ------------------------------------------------------------------ conf changes
    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return confchange.apply_conf_change(self, cc)
