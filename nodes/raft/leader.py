"""The leader's step function and log replication (appends, heartbeats, snapshots, reads)."""

from __future__ import annotations

import logging

from .codec import decode_conf_change
from .errors import (
    Compacted,
    InvariantViolated,
    ProposalDropped,
    SnapshotTemporarilyUnavailable,
    Unavailable,
)
from .quorum import VoteResult, committed_index, vote_result
from .state import RaftState
from .types import (
    NONE,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
    ProgressState,
    ReadOnlyOption,
    ReadState,
    StateType,
)

log = logging.getLogger(__name__)

MT = MessageType
_HEARTBEAT = MT.HEARTBEAT


def committed_entry_in_current_term(r: RaftState) -> bool:
    return r.raft_log.zero_term_on_compacted(r.raft_log.committed) == r.term


def lease_valid(r: RaftState) -> bool:
    """May the leader answer a read from its lease, without a quorum round?

    Sound under equal tick rates: a follower that acknowledged a heartbeat sent at our clock
    reading s reset its election clock after s, and (with CheckQuorum) grants no vote for
    `election_timeout` of its ticks after that, i.e. not before s + election_timeout - 1 of
    ours. So while a quorum acknowledged heartbeats sent at most election_timeout - 2 ticks
    ago, no other leader can exist. (etcd instead trusts the lease until the next CheckQuorum
    round, which can overlap a newer leader by up to an election timeout.) Quiesced ticks
    advance the clock, so a quiesced leader's lease expires. A TimeoutNow sent this term voids
    the lease: forced campaigns ignore follower leases.
    """
    if r.state != StateType.LEADER or r.lease_broken:
        return False
    tr = r.tracker
    now = r.ticks
    acks = {v: now if v == r.id else tr.progress[v].lease_ack for v in tr.voters}
    acked_recently = now - committed_index(tr.voters, acks) <= r.election_timeout - 2
    return r.rules.lease_holds(acked_recently, r.check_quorum)


# ---------------------------------------------------------------------- sending
def send_append(r: RaftState, to: int) -> None:
    maybe_send_append(r, to, send_if_empty=True)


def maybe_send_append(r: RaftState, to: int, send_if_empty: bool) -> bool:
    """Send to `to` the entries it lacks (or a snapshot); False if nothing was sent."""
    pr = r.tracker.progress[to]
    if pr.is_paused():
        return False
    rl = r.raft_log
    try:
        prev_term = rl.term(pr.next - 1)
        ents = rl.entries(pr.next, r.max_msg_size)
    except (Compacted, Unavailable):
        return _send_snapshot(r, to)
    if not ents and not send_if_empty:
        return False
    prev_index = pr.next - 1
    if ents:
        if pr.state == ProgressState.REPLICATE:
            last = ents[-1].index
            pr.optimistic_update(last)  # pipeline: assume it will be accepted
            pr.inflights.add(last)
        elif pr.state == ProgressState.PROBE:
            pr.probe_sent = True  # one probe at a time until it is answered
        else:
            raise InvariantViolated(f"node {r.id}: sending append to {to} in SNAPSHOT state")
    r.send(Message(MT.APP, to=to, index=prev_index, log_term=prev_term, entries=tuple(ents),
                   commit=rl.committed))
    return True


def _send_snapshot(r: RaftState, to: int) -> bool:
    pr = r.tracker.progress[to]
    if not pr.recent_active:
        log.debug("node %d: not sending snapshot to inactive %d", r.id, to)
        return False
    try:
        snap = r.raft_log.snapshot()
    except SnapshotTemporarilyUnavailable:
        log.debug("node %d: snapshot for %d temporarily unavailable", r.id, to)
        return False
    if snap.is_empty():
        raise InvariantViolated(f"node {r.id}: need a non-empty snapshot for {to}")
    pr.become_snapshot(snap.metadata.index)
    log.debug("node %d: sending snapshot %d to %d", r.id, snap.metadata.index, to)
    r.send(Message(MT.SNAP, to=to, snapshot=snap))
    return True


def bcast_append(r: RaftState) -> None:
    for pid in sorted(r.tracker.progress):
        if pid != r.id:
            send_append(r, pid)


def bcast_heartbeat(r: RaftState, ctx: bytes = b"") -> None:
    committed = r.raft_log.committed
    term = r.term
    me = r.id
    out = r.msgs
    # Built directly (not via send): the hottest path of an idle leader.
    for pid, pr in r.tracker.progress.items():
        if pid != me:
            # Never tell a follower to commit past what it is known to hold.
            # index carries our clock reading, echoed back to date the lease (lease_valid).
            out.append(Message(_HEARTBEAT, to=pid, from_=me, term=term, index=r.ticks,
                               commit=min(pr.match, committed), context=ctx))


def send_timeout_now(r: RaftState, to: int) -> None:
    r.lease_broken = True  # the transferee's forced campaign ignores follower leases
    r.send(Message(MT.TIMEOUT_NOW, to=to))


# ---------------------------------------------------------------------- reads
def response_to_read_index(r: RaftState, req: Message, index: int) -> Message | None:
    if req.from_ == NONE or req.from_ == r.id:
        r.read_states.append(ReadState(index, req.context))
        return None
    return Message(MT.READ_INDEX_RESP, to=req.from_, index=index, context=req.context)


def send_read_index_response(r: RaftState, m: Message) -> None:
    if r.read_only.option == ReadOnlyOption.LEASE_BASED and lease_valid(r):
        resp = response_to_read_index(r, m, r.raft_log.committed)
        if resp is not None:
            r.send(resp)
        return
    # SAFE (or an expired lease): confirm leadership with a quorum heartbeat round.
    r.read_only.add_request(r.raft_log.committed, m)
    r.read_only.recv_ack(r.id, m.context)
    bcast_heartbeat(r, m.context)


def release_pending_read_index_messages(r: RaftState) -> None:
    if not r.pending_read_index_messages or not committed_entry_in_current_term(r):
        return
    pending, r.pending_read_index_messages = r.pending_read_index_messages, []
    for m in pending:
        send_read_index_response(r, m)


# ---------------------------------------------------------------------- step
def conf_change_refusal(r: RaftState, data: bytes) -> str | None:
    """Why a leader must not append this proposed conf change entry (None: it may).

    Checked when no other change is pending, so the tracker holds the configuration the
    entry would change. An entry that cannot be decoded would stop every replica applying
    it; one that removes the last voter leaves a group that can never commit again (etcd's
    confchange refuses it as "removed all voters")."""
    try:
        cc = decode_conf_change(data)
    except ValueError as e:
        return f"undecodable conf change ({e})"
    if cc.type == ConfChangeType.REMOVE_NODE and r.tracker.voters == (cc.node_id,):
        return f"removing voter {cc.node_id} would leave no voters"
    return None


def step_leader(r: RaftState, m: Message) -> None:
    t = m.type
    if t == MT.BEAT:
        bcast_heartbeat(r, r.read_only.last_pending_request_ctx())
        return
    if t == MT.CHECK_QUORUM:
        if not r.tracker.quorum_active():
            log.info("node %d stepped down at term %d: quorum not active", r.id, r.term)
            r.become_follower(r.term, NONE)
        for pid, other in r.tracker.progress.items():
            if pid != r.id:
                other.recent_active = False
        return
    if t == MT.PROP:
        _step_prop(r, m)
        return
    if t == MT.READ_INDEX:
        if r.tracker.is_singleton():
            resp = response_to_read_index(r, m, r.raft_log.committed)
            if resp is not None:
                r.send(resp)
            return
        if not committed_entry_in_current_term(r):
            # A new leader does not know the commit index until an entry of its term commits.
            r.pending_read_index_messages.append(m)
            return
        send_read_index_response(r, m)
        return

    pr = r.tracker.progress.get(m.from_)
    if pr is None:
        log.debug("node %d: no progress for %d, dropping %s", r.id, m.from_, t.name)
        return
    if t == MT.APP_RESP:
        _handle_append_response(r, m)
    elif t == MT.HEARTBEAT_RESP:
        pr.recent_active = True
        pr.probe_sent = False
        if m.index > pr.lease_ack:
            pr.lease_ack = m.index
        # Free one slot so a full pipeline to a live follower can make progress.
        if pr.state == ProgressState.REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()
        if pr.match < r.raft_log.last_index():
            send_append(r, m.from_)
        # Pending quorum reads (SAFE, or LEASE_BASED whose lease had expired).
        if not m.context:
            return
        acks = r.read_only.recv_ack(m.from_, m.context)
        if acks is None or vote_result(r.tracker.voters, acks) != VoteResult.WON:
            return
        for rs in r.read_only.advance(m.context):
            resp = response_to_read_index(r, rs.req, rs.index)
            if resp is not None:
                r.send(resp)
    elif t == MT.SNAP_STATUS:
        if pr.state != ProgressState.SNAPSHOT:
            return
        if m.reject:
            pr.pending_snapshot = 0  # retry from match + 1
        pr.become_probe()
        # Wait for an append response or heartbeat before probing again.
        pr.probe_sent = True
    elif t == MT.UNREACHABLE:
        if pr.state == ProgressState.REPLICATE:
            pr.become_probe()
    elif t == MT.TRANSFER_LEADER:
        _handle_transfer_leader(r, m)


def _step_prop(r: RaftState, m: Message) -> None:
    if not m.entries:
        raise InvariantViolated(f"node {r.id}: empty proposal")
    if r.id not in r.tracker.progress:
        raise ProposalDropped(f"node {r.id}: leader was removed from the configuration")
    if r.lead_transferee != NONE:
        raise ProposalDropped(
            f"node {r.id}: leader transfer to {r.lead_transferee} in progress"
        )
    ents = list(m.entries)
    for i, e in enumerate(ents):
        if e.type != EntryType.CONF_CHANGE:
            continue
        if r.pending_conf_index > r.raft_log.applied:
            # One conf change at a time: turn this one into a no-op entry.
            log.info("node %d: conf change ignored, one pending at %d (applied %d)", r.id,
                     r.pending_conf_index, r.raft_log.applied)
            ents[i] = Entry(0, 0)
        elif (why := conf_change_refusal(r, e.data)) is not None:
            log.warning("node %d: conf change refused: %s", r.id, why)
            ents[i] = Entry(0, 0)
        else:
            r.pending_conf_index = r.raft_log.last_index() + i + 1
    if not r.append_entry(ents):
        raise ProposalDropped(f"node {r.id}: uncommitted entries size limit reached")
    bcast_append(r)


def _handle_append_response(r: RaftState, m: Message) -> None:
    pr = r.tracker.progress[m.from_]
    pr.recent_active = True
    if m.reject:
        next_probe = m.reject_hint
        if m.log_term > 0:
            # The follower told us its term at the hint; skip our entries of larger terms.
            next_probe, _ = r.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decr_to(m.index, next_probe):
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            send_append(r, m.from_)
        return
    old_paused = pr.is_paused()
    if not pr.maybe_update(m.index):
        return
    if pr.state == ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
        # The snapshot (or a later append) landed: resume normal replication.
        pr.become_probe()
        pr.become_replicate()
    elif pr.state == ProgressState.REPLICATE:
        pr.inflights.free_le(m.index)
    if r.maybe_commit():
        release_pending_read_index_messages(r)
        bcast_append(r)
    elif old_paused:
        send_append(r, m.from_)
    # Fill the pipeline while there are entries and window left (bounded by the window).
    for _ in range(r.tracker.max_inflight + 1):
        if not maybe_send_append(r, m.from_, send_if_empty=False):
            break
    if m.from_ == r.lead_transferee and pr.match == r.raft_log.last_index():
        log.info("node %d: transferee %d caught up, sending TimeoutNow", r.id, m.from_)
        send_timeout_now(r, m.from_)


def _handle_transfer_leader(r: RaftState, m: Message) -> None:
    transferee = m.from_
    pr = r.tracker.progress[transferee]
    if pr.is_learner:
        log.info("node %d: refusing leader transfer to learner %d", r.id, transferee)
        return
    last = r.lead_transferee
    if last != NONE:
        if last == transferee:
            return  # already transferring to it
        r.abort_leader_transfer()
    if transferee == r.id:
        return  # already leader
    # The transfer must finish within one election timeout.
    r.election_elapsed = 0
    r.lead_transferee = transferee
    if pr.match == r.raft_log.last_index():
        send_timeout_now(r, transferee)
    else:
        send_append(r, transferee)
