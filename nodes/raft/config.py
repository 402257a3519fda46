"""Config of one Raft node, with validation that names the offending field."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigInvalid
from .rules import KNOWN_BUGS, rules_for
from .storage import Storage
from .types import ReadOnlyOption


@dataclass
class Config:
    id: int
    storage: Storage
    election_tick: int = 10
    heartbeat_tick: int = 1
    applied: int = 0
    max_size_per_msg: int = 1 << 20
    max_committed_size_per_ready: int = 0  # 0 = no limit
    max_uncommitted_entries_size: int = 0  # 0 = no limit
    max_inflight_msgs: int = 256
    check_quorum: bool = False
    pre_vote: bool = False
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    disable_proposal_forwarding: bool = False
    step_down_on_removal: bool = False
    bugs: frozenset[str] = field(default_factory=frozenset)  # seeded bugs (rules.py), off

    def validate(self) -> None:
        """Raise ConfigInvalid naming the first bad field."""
        if self.id <= 0:
            raise ConfigInvalid(f"Config.id: must be a positive node id, got {self.id}")
        if self.heartbeat_tick <= 0:
            raise ConfigInvalid(f"Config.heartbeat_tick: must be > 0, got {self.heartbeat_tick}")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigInvalid(
                f"Config.election_tick: must be > heartbeat_tick ({self.heartbeat_tick}),"
                f" got {self.election_tick}"
            )
        if self.max_inflight_msgs <= 0:
            raise ConfigInvalid(
                f"Config.max_inflight_msgs: must be > 0, got {self.max_inflight_msgs}"
            )
        for name in ("applied", "max_size_per_msg", "max_committed_size_per_ready",
                     "max_uncommitted_entries_size"):
            if getattr(self, name) < 0:
                raise ConfigInvalid(f"Config.{name}: must be >= 0, got {getattr(self, name)}")
        unknown = set(self.bugs) - KNOWN_BUGS
        if unknown:
            raise ConfigInvalid(f"Config.bugs: unknown seeded bug(s) {sorted(unknown)}")
        if (
            self.read_only_option == ReadOnlyOption.LEASE_BASED
            and not self.check_quorum
            and rules_for(self.bugs).lease_reads_need_check_quorum()
        ):
            raise ConfigInvalid(
                "Config.read_only_option: LEASE_BASED requires check_quorum=True"
            )
