"""Errors raised by the Raft core (one class per failure the caller may act on)."""

from __future__ import annotations


class RaftError(Exception):
    """Base class of every error the Raft core raises."""


class ProposalDropped(RaftError):
    """The proposal was not appended (no leader, transfer in progress, limits, ...)."""


class Compacted(RaftError):
    """The requested index is older than the storage's first index (compacted away)."""


class SnapOutOfDate(RaftError):
    """The snapshot is older than the one the storage already holds."""


class Unavailable(RaftError):
    """The requested index is newer than the storage's last index."""


class SnapshotTemporarilyUnavailable(RaftError):
    """The storage cannot produce a snapshot right now; the leader retries later."""


class StepLocalMsg(RaftError):
    """A local-only message kind (Hup, Beat, ...) arrived from the network."""


class StepPeerNotFound(RaftError):
    """A response arrived from a peer that is not in the progress tracker."""


class ConfigInvalid(RaftError):
    """The Config is invalid; the message names the field."""


class InvariantViolated(Exception):
    """An internal Raft invariant broke (etcd panics here); the node must stop.

    Deliberately not a RaftError: code that tolerates RaftError from step() must not carry
    on with a corrupted log (e.g. a conflict below the commit index).
    """
