"""A follower's replication progress as the leader sees it (etcd's tracker.Progress)."""

from __future__ import annotations

from .inflights import Inflights
from .types import ProgressState

NO_LEASE_ACK = -(1 << 62)


class Progress:
    __slots__ = (
        "match", "next", "state", "pending_snapshot", "recent_active", "probe_sent",
        "_inflights", "max_inflight", "is_learner", "lease_ack",
    )

    def __init__(self, next_: int, max_inflight: int, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        # Heard from recently (reset on each CheckQuorum round).
        self.recent_active = False
        # In PROBE: one append was sent and we wait for its answer (or a heartbeat reply).
        self.probe_sent = False
        # Created on first use: an idle follower's progress never needs a window.
        self._inflights: Inflights | None = None
        self.max_inflight = max_inflight
        self.is_learner = is_learner
        # Leader clock reading of the newest heartbeat this peer acknowledged (lease reads).
        self.lease_ack = NO_LEASE_ACK

    @property
    def inflights(self) -> Inflights:
        if self._inflights is None:
            self._inflights = Inflights(self.max_inflight)
        return self._inflights

    @property
    def inflight_count(self) -> int:
        return 0 if self._inflights is None else self._inflights.count

    def release_inflights(self) -> None:
        self._inflights = None

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
            f"inflight={self.inflight_count})"
        )

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self._inflights = None

    def become_probe(self) -> None:
        # After a snapshot, probe from just past it (or from match+1 if that is later).
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """Record an acknowledged index n; False if it is stale."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def optimistic_update(self, n: int) -> None:
        self.next = n + 1

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Handle a rejection of the append at `rejected`; False if the rejection is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1  # pipeline broke: restart right after match
            return True
        if self.next - 1 != rejected:
            return False  # not the probe we are waiting for
        self.next = max(min(rejected, match_hint + 1), 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
