"""Which messages of a Ready may leave before the node's fsync (Raft thesis §10.2.1).

A leader may send its appends in parallel with writing them to its own disk. Why that is
safe with this core and node loop:

- The core counts the leader's own log for commit through its own progress, which it
  advances when it appends (as etcd's classic raft does), i.e. before the fsync. But the
  node loop is serial: a Ready's fsync finishes before the loop steps any further message,
  so every append response the leader ever counts arrives after the fsync of the entries it
  acknowledges had been sent. Followers cannot acknowledge entries that were never sent, so
  the quorum index, hence the commit index (also the one carried in APP/HEARTBEAT), never
  exceeds the leader's durable log.
- Committed entries are applied, and clients answered, only after the Ready's fsync, so an
  acknowledged write is on the leader's disk as well as on a quorum's.
- A leader that crashes before its fsync loses only entries that nobody has counted: like
  any uncommitted tail, they are kept or overwritten by the next leader.

Everything that carries this node's own promise stays behind the fsync: vote and pre-vote
responses, append and heartbeat responses, any other message of a non-leader, and every
message of a Ready that changes term or vote or installs a snapshot (the term the appends
claim must be durable first).

A follower's forwarded proposals and read requests (MsgProp, MsgReadIndex) go early too: they
travel as local messages (term 0) and promise nothing -- the leader decides everything about
them -- so making them wait for the follower's fsync of unrelated entries only adds latency.
"""

from __future__ import annotations

from nodes.raft import HardState, Message, MessageType, Ready, StateType

# The leader's replication traffic: it asserts only the leader's log, never a promise.
EARLY_TYPES = frozenset({MessageType.APP, MessageType.HEARTBEAT})
# Requests forwarded to the leader (term 0, no promise of this node in them).
FORWARD_TYPES = frozenset({MessageType.PROP, MessageType.READ_INDEX})


def split_messages(
    rd: Ready, role: StateType, durable: HardState
) -> tuple[list[Message], list[Message]]:
    """(sent before the fsync, sent after it); `durable` is the last hard state on disk."""
    if not rd.snapshot.is_empty():
        return [], list(rd.messages)
    hs = rd.hard_state
    replicate = role == StateType.LEADER and (
        hs.is_empty() or (hs.term, hs.vote) == (durable.term, durable.vote)
    )
    early: list[Message] = []
    late: list[Message] = []
    for m in rd.messages:
        if m.type in FORWARD_TYPES or (replicate and m.type in EARLY_TYPES):
            early.append(m)
        else:
            late.append(m)
    return early, late
