"""The follower's step function, and the handlers of a leader's messages (appends, heartbeats,
snapshots) that a candidate hearing from a leader uses too."""

from __future__ import annotations

import logging

from .errors import ProposalDropped
from .state import RaftState
from .types import NONE, Message, MessageType, ReadState, Snapshot, StateType

log = logging.getLogger(__name__)

MT = MessageType


def step_follower(r: RaftState, m: Message) -> None:
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
            handle_append_entries(r, m)
        elif t == MT.HEARTBEAT:
            handle_heartbeat(r, m)
        else:
            handle_snapshot(r, m)
    elif t == MT.TRANSFER_LEADER:
        if r.lead == NONE:
            log.debug("node %d: no leader, dropping leader transfer", r.id)
            return
        m.to = r.lead
        r.send(m)
    elif t == MT.TIMEOUT_NOW:
        # Leadership transfers never use PreVote; non-voters refuse.
        r.rules.timeout_now(r)
    elif t == MT.READ_INDEX:
        if r.lead == NONE:
            log.debug("node %d: no leader, dropping read index", r.id)
            return
        m.to = r.lead
        r.send(m)
    elif t == MT.READ_INDEX_RESP:
        r.read_states.append(ReadState(m.index, m.context))


# ---------------------------------------------------------------------- a leader's messages
def handle_append_entries(r: RaftState, m: Message) -> None:
    rl = r.raft_log
    if m.index < rl.committed:
        r.send(Message(MT.APP_RESP, to=m.from_, index=rl.committed))
        return
    mlast, ok = rl.maybe_append(m.index, m.log_term, m.commit, m.entries)
    if ok:
        r.send(Message(MT.APP_RESP, to=m.from_, index=mlast))
        return
    # Reject with a hint: the largest index whose term is <= the probe's log term, so
    # that the leader can skip a whole term of mismatching entries at once.
    hint_index = min(m.index, rl.last_index())
    hint_index, hint_term = rl.find_conflict_by_term(hint_index, m.log_term)
    r.send(Message(MT.APP_RESP, to=m.from_, index=m.index, reject=True,
                   reject_hint=hint_index, log_term=hint_term))


def handle_heartbeat(r: RaftState, m: Message) -> None:
    r.raft_log.commit_to(m.commit)
    # Echo the leader's clock reading (index): it dates the lease this ack extends.
    r.send(Message(MT.HEARTBEAT_RESP, to=m.from_, index=m.index, context=m.context))


def handle_snapshot(r: RaftState, m: Message) -> None:
    s = m.snapshot
    if s is not None and restore(r, s):
        r.send(Message(MT.APP_RESP, to=m.from_, index=r.raft_log.last_index()))
    else:
        r.send(Message(MT.APP_RESP, to=m.from_, index=r.raft_log.committed))


def restore(r: RaftState, s: Snapshot) -> bool:
    """Install snapshot s; False if it is stale or already covered by our log."""
    md = s.metadata
    if md.index <= r.raft_log.committed:
        return False
    if r.state != StateType.FOLLOWER:
        # Defensive (etcd): only followers restore; never become leader from here.
        r.become_follower(r.term + 1, NONE)
        return False
    cs = md.conf_state
    if r.id not in cs.voters and r.id not in cs.learners:
        # Unlike etcd (which refuses it and relies on etcdserver always sending a fresh
        # snapshot), install it: a member added after the leader's last snapshot would
        # otherwise never catch up. We are simply not promotable until the entry that
        # added us is applied; nothing here assumes we are in the tracker.
        log.info("node %d: installing snapshot %d that predates our membership", r.id,
                 md.index)
    if r.raft_log.match_term(md.index, md.term):
        # We already have the snapshot's last entry: just fast-forward the commit.
        r.raft_log.commit_to(md.index)
        return False
    r.raft_log.restore(s)
    r.restore_conf(cs)
    log.info("node %d restored snapshot at index %d term %d", r.id, md.index, md.term)
    return True
