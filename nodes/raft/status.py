"""Status snapshots of a Raft node for the application and the admin API."""

from __future__ import annotations

from dataclasses import dataclass, field

from .state import RaftState
from .types import ConfState, HardState, ProgressState, SoftState, StateType


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    match: int
    next: int
    state: ProgressState
    recent_active: bool
    paused: bool
    inflight_count: int


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    progress: dict[int, ProgressStatus] = field(default_factory=dict)
    lead_transferee: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


def basic_status(r: RaftState) -> Status:
    return Status(
        id=r.id,
        hard_state=r.hard_state(),
        soft_state=r.soft_state(),
        applied=r.raft_log.applied,
        lead_transferee=r.lead_transferee,
        conf_state=r.tracker.conf_state(),
    )


def status(r: RaftState) -> Status:
    """Like basic_status, plus every peer's progress when this node is the leader."""
    prs: dict[int, ProgressStatus] = {}
    if r.state == StateType.LEADER:
        for pid, pr in r.tracker.items():
            prs[pid] = ProgressStatus(
                pr.match, pr.next, pr.state, pr.recent_active, pr.is_paused(),
                pr.inflight_count,
            )
    return Status(
        id=r.id,
        hard_state=r.hard_state(),
        soft_state=r.soft_state(),
        applied=r.raft_log.applied,
        progress=prs,
        lead_transferee=r.lead_transferee,
        conf_state=r.tracker.conf_state(),
    )
