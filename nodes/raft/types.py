"""Value types of the Raft core: entries, states, snapshots, conf changes and messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

NONE = 0  # "no node": no leader, no vote
CAMPAIGN_TRANSFER = b"CampaignTransfer"  # vote context of a forced (leader transfer) campaign


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class StateType(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


class ConfChangeType(IntEnum):
    ADD_NODE = 0
    REMOVE_NODE = 1
    UPDATE_NODE = 2
    ADD_LEARNER_NODE = 3


class MessageType(IntEnum):
    HUP = 0
    BEAT = 1
    PROP = 2
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    SNAP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10
    SNAP_STATUS = 11
    CHECK_QUORUM = 12
    TRANSFER_LEADER = 13
    TIMEOUT_NOW = 14
    READ_INDEX = 15
    READ_INDEX_RESP = 16
    PRE_VOTE = 17
    PRE_VOTE_RESP = 18


LOCAL_MESSAGES = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
        MessageType.CHECK_QUORUM,
    }
)
RESPONSE_MESSAGES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.UNREACHABLE,
        MessageType.PRE_VOTE_RESP,
    }
)


def vote_resp_type(t: MessageType) -> MessageType:
    """The response kind answering a Vote or PreVote request."""
    if t == MessageType.VOTE:
        return MessageType.VOTE_RESP
    if t == MessageType.PRE_VOTE:
        return MessageType.PRE_VOTE_RESP
    raise ValueError(f"not a vote message: {t!r}")


class CampaignType(IntEnum):
    PRE_ELECTION = 0
    ELECTION = 1
    TRANSFER = 2  # forced by TimeoutNow: skips PreVote and bypasses leases


class ReadOnlyOption(IntEnum):
    SAFE = 0  # ReadIndex confirmed by a quorum heartbeat round
    LEASE_BASED = 1  # ReadIndex served under the leader lease (needs check_quorum)


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: int = 0
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == 0 and self.commit == 0


@dataclass(frozen=True, slots=True)
class SoftState:
    lead: int
    raft_state: StateType


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    conf_state: ConfState = field(default_factory=ConfState)
    index: int = 0
    term: int = 0


EMPTY_METADATA = SnapshotMetadata()


@dataclass(frozen=True, slots=True)
class Snapshot:
    data: bytes = b""
    metadata: SnapshotMetadata = EMPTY_METADATA

    def is_empty(self) -> bool:
        return self.metadata.index == 0


EMPTY_SNAPSHOT = Snapshot()
EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: int
    context: bytes = b""


@dataclass(slots=True)
class Message:
    """A Raft message. Mutable so that `send` can stamp from/term, as etcd does."""

    type: MessageType
    to: int = 0
    from_: int = 0
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ReadState:
    index: int
    request_ctx: bytes


@dataclass(slots=True)
class Ready:
    """Everything the application must persist, send and apply in one iteration."""

    soft_state: SoftState | None = None
    hard_state: HardState = EMPTY_HARD_STATE
    read_states: list[ReadState] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot = EMPTY_SNAPSHOT
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    must_sync: bool = False
