"""A pure, deterministic Raft consensus core in the style of etcd's raft library.

The public API is documented in docs/raft-core-api.md; everything listed there is importable
from this package.
"""

from . import codec, rand
from .config import Config
from .errors import (
    Compacted,
    ConfigInvalid,
    InvariantViolated,
    ProposalDropped,
    RaftError,
    SnapOutOfDate,
    SnapshotTemporarilyUnavailable,
    StepLocalMsg,
    StepPeerNotFound,
    Unavailable,
)
from .rawnode import RawNode
from .rules import KNOWN_BUGS
from .status import ProgressStatus, Status
from .storage import MemoryStorage, Storage
from .types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProgressState,
    ReadOnlyOption,
    ReadState,
    Ready,
    Snapshot,
    SnapshotMetadata,
    SoftState,
    StateType,
)

__all__ = [
    "KNOWN_BUGS", "NONE", "Compacted", "ConfChange", "ConfChangeType", "ConfState", "Config",
    "ConfigInvalid", "Entry", "EntryType", "HardState", "InvariantViolated", "MemoryStorage",
    "Message", "MessageType", "ProgressState", "ProgressStatus", "ProposalDropped",
    "RaftError", "RawNode", "ReadOnlyOption", "ReadState", "Ready", "SnapOutOfDate",
    "Snapshot", "SnapshotMetadata", "SnapshotTemporarilyUnavailable", "SoftState",
    "StateType", "Status", "StepLocalMsg", "StepPeerNotFound", "Storage", "Unavailable",
    "codec", "rand",
]
