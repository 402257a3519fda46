"""The step function of a (pre-)candidate: count votes, concede to a leader it hears from."""

from __future__ import annotations

import logging

from . import leader
from .errors import ProposalDropped
from .follower import handle_append_entries, handle_heartbeat, handle_snapshot
from .quorum import VoteResult
from .state import RaftState
from .types import NONE, CampaignType, Message, MessageType, StateType

log = logging.getLogger(__name__)

MT = MessageType


def step_candidate(r: RaftState, m: Message) -> None:
    my_resp = MT.PRE_VOTE_RESP if r.state == StateType.PRE_CANDIDATE else MT.VOTE_RESP
    t = m.type
    if t == MT.PROP:
        raise ProposalDropped(f"node {r.id}: campaigning at term {r.term}, no leader")
    if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
        # A leader of our term (or higher) exists.
        r.become_follower(m.term, m.from_)
        if t == MT.APP:
            handle_append_entries(r, m)
        elif t == MT.HEARTBEAT:
            handle_heartbeat(r, m)
        else:
            handle_snapshot(r, m)
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
