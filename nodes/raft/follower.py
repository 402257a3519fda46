"""Step functions of followers and (pre-)candidates (the leader's are in leader.py)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import leader
from .config import BUG_TIMEOUT_NOW_NON_MEMBER
from .errors import ProposalDropped
from .quorum import VoteResult
from .types import NONE, CampaignType, Message, MessageType, ReadState, StateType

if TYPE_CHECKING:
    from .raft import Raft

log = logging.getLogger(__name__)

MT = MessageType


def step_follower(r: Raft, m: Message) -> None:
    t = m.type
    if t == MT.PROP:
        if r.lead == NONE:
            raise ProposalDropped(f"node {r.id}: no leader at term {r.term}")
        if r.disable_proposal_forwarding:
            raise ProposalDropped(f"node {r.id}: proposal forwarding disabled")
        m.to = r.lead
        r.send(m)
    elif t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
        r.election_elapsed = 0
        r.lead = m.from_
        if t == MT.APP:
            r.handle_append_entries(m)
        elif t == MT.HEARTBEAT:
            r.handle_heartbeat(m)
        else:
            r.handle_snapshot(m)
    elif t == MT.TRANSFER_LEADER:
        if r.lead == NONE:
            log.debug("node %d: no leader, dropping leader transfer", r.id)
            return
        m.to = r.lead
        r.send(m)
    elif t == MT.TIMEOUT_NOW:
        if BUG_TIMEOUT_NOW_NON_MEMBER in r.bugs:
            # Seeded bug: campaign even if we are not a voter (no promotable check).
            r.campaign(CampaignType.TRANSFER)
        else:
            # Leadership transfers never use PreVote; hup refuses non-voters.
            r.hup(CampaignType.TRANSFER)
    elif t == MT.READ_INDEX:
        if r.lead == NONE:
            log.debug("node %d: no leader, dropping read index", r.id)
            return
        m.to = r.lead
        r.send(m)
    elif t == MT.READ_INDEX_RESP:
        r.read_states.append(ReadState(m.index, m.context))


def step_candidate(r: Raft, m: Message) -> None:
    my_resp = MT.PRE_VOTE_RESP if r.state == StateType.PRE_CANDIDATE else MT.VOTE_RESP
    t = m.type
    if t == MT.PROP:
        raise ProposalDropped(f"node {r.id}: campaigning at term {r.term}, no leader")
    if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
        # A leader of our term (or higher) exists.
        r.become_follower(m.term, m.from_)
        if t == MT.APP:
            r.handle_append_entries(m)
        elif t == MT.HEARTBEAT:
            r.handle_heartbeat(m)
        else:
            r.handle_snapshot(m)
    elif t == my_resp:
        res = r.poll(m.from_, t, not m.reject)
        if res == VoteResult.WON:
            if r.state == StateType.PRE_CANDIDATE:
                r.campaign(CampaignType.ELECTION)
            else:
                r.become_leader()
                leader.bcast_append(r)
        elif res == VoteResult.LOST:
            # A rejected PreVote or Vote can carry our own term; stay at it.
            r.become_follower(r.term, NONE)
    elif t == MT.TIMEOUT_NOW:
        log.debug("node %d ignoring TimeoutNow from %d while campaigning", r.id, m.from_)
