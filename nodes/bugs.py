"""Seeded bugs (``--bug NAME``): deliberately broken variants of real code paths.

Each is off by default and is a small switch in the code that does the real work, so that the
harness can prove it catches the anomaly each one produces.
"""

from __future__ import annotations

from dataclasses import dataclass

# Bugs implemented by the node process itself.
NODE_BUGS: dict[str, str] = {
    "vote-not-durable": (
        "the hard state is written to the WAL without its vote and the vote response is sent "
        "without waiting for fsync, so a restarted node forgets whom it voted for and can vote "
        "twice in one term: two leaders in one term (election safety, one-vote-per-term)"
    ),
    "stale-read": (
        "a node that believes it is leader answers linearizable reads from its local state "
        "without ReadIndex or a lease, so a deposed leader in a minority partition serves "
        "stale values (a linearizability violation: a read misses an acknowledged write); with "
        "check-quorum on the window is short (until the old leader steps down), with "
        "--no-check-quorum it lasts the whole partition"
    ),
    "ack-before-fsync": (
        "a Ready's new entries are taken as durable before the WAL is fsynced (the fsync is "
        "left to the next tick, as with a periodic sync interval): followers acknowledge "
        "appends, and the leader commits, applies and answers clients, for entries that are "
        "only in the page cache, so a power failure of a quorum loses acknowledged writes "
        "(lost writes; durability: a boot recovers a commit index below the one it reported)"
    ),
    "snapshot-rename-before-fsync": (
        "a snapshot file is renamed into place (and its directory fsynced) without fsyncing its "
        "data first, trusting the rename to be atomic; the WAL then records the snapshot and "
        "releases the entries it covers, so after a power failure the newest snapshot is empty "
        "and the node cannot start (durability: it refuses its own data)"
    ),
    "skip-wal-crc": (
        "WAL replay does not verify record checksums, so a record corrupted on disk is applied "
        "instead of refused: the restarted node applies entries that differ from every other "
        "replica's (state machine safety) or recovers a wrong hard state"
    ),
}

# Bugs implemented in the Raft core (nodes.raft Config.bugs); the node passes them through.
CORE_BUGS: dict[str, str] = {
    "timeout-now-non-member": (
        "a node removed from the configuration still campaigns when it receives TimeoutNow, "
        "so a non-member can become leader (leader-membership violation)"
    ),
    "no-up-to-date-check": (
        "votes are granted regardless of whether the candidate's log is at least as up to date, "
        "so a leader can lack committed entries and overwrite them (leader completeness, "
        "lost acknowledged writes)"
    ),
    "commit-old-term": (
        "a leader counts replicas of entries from older terms to commit them (Raft paper fig. 8), "
        "so a committed entry can later be overwritten (state machine safety)"
    ),
    "lease-without-check-quorum": (
        "lease reads are allowed while CheckQuorum is off, so a partitioned old leader keeps "
        "serving lease reads after a new leader took writes (stale reads)"
    ),
}

ALL_BUGS: dict[str, str] = {**NODE_BUGS, **CORE_BUGS}


class UnknownBug(ValueError):
    """A --bug name that is not one of ALL_BUGS."""


@dataclass(frozen=True)
class Bugs:
    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, names: list[str]) -> Bugs:
        for n in names:
            if n not in ALL_BUGS:
                raise UnknownBug(f"unknown bug {n!r} (known: {', '.join(sorted(ALL_BUGS))})")
        return cls(frozenset(names))

    @property
    def vote_not_durable(self) -> bool:
        return "vote-not-durable" in self.names

    @property
    def stale_read(self) -> bool:
        return "stale-read" in self.names

    @property
    def ack_before_fsync(self) -> bool:
        return "ack-before-fsync" in self.names

    @property
    def snapshot_rename_before_fsync(self) -> bool:
        return "snapshot-rename-before-fsync" in self.names

    @property
    def skip_wal_crc(self) -> bool:
        return "skip-wal-crc" in self.names

    @property
    def core(self) -> frozenset[str]:
        return frozenset(n for n in self.names if n in CORE_BUGS)
