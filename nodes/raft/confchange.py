"""Single-step membership changes applied to a Raft node's progress tracker."""

from __future__ import annotations

import logging

from . import leader
from .progress import Progress
from .state import RaftState
from .types import NONE, ConfChange, ConfChangeType, ConfState, StateType

log = logging.getLogger(__name__)


def apply_conf_change(r: RaftState, cc: ConfChange) -> ConfState:
    if cc.node_id == NONE:
        return r.tracker.conf_state()
    if cc.type == ConfChangeType.ADD_NODE:
        add_node(r, cc.node_id, is_learner=False)
    elif cc.type == ConfChangeType.ADD_LEARNER_NODE:
        add_node(r, cc.node_id, is_learner=True)
    elif cc.type == ConfChangeType.REMOVE_NODE:
        remove_node(r, cc.node_id)
    return r.tracker.conf_state()


def add_node(r: RaftState, node: int, is_learner: bool) -> None:
    tr = r.tracker
    pr = tr.progress.get(node)
    if pr is None:
        pr = Progress(r.raft_log.last_index() + 1, tr.max_inflight, is_learner)
        tr.progress[node] = pr
        if is_learner:
            tr.add_learner(node)
        else:
            tr.add_voter(node)
    elif is_learner and not pr.is_learner:
        log.info("node %d: cannot demote voter %d to learner", r.id, node)
        return
    elif is_learner == pr.is_learner:
        return  # already there (replayed conf change)
    else:
        # Promote a learner to voter.
        tr.add_voter(node)
        pr.is_learner = False
    if node == r.id:
        r.is_learner = is_learner
    # Count the new member as active so CheckQuorum does not depose us right away.
    pr.recent_active = True


def remove_node(r: RaftState, node: int) -> None:
    tr = r.tracker
    tr.progress.pop(node, None)
    tr.remove(node)
    if not tr.voters and not tr.learners:
        return
    if node == r.id and r.state == StateType.LEADER and r.step_down_on_removal:
        r.become_follower(r.term, NONE)
        return
    if r.state == StateType.LEADER:
        # The quorum shrank: pending entries may now be committed.
        if r.maybe_commit():
            leader.bcast_append(r)
        if r.lead_transferee == node:
            r.abort_leader_transfer()
