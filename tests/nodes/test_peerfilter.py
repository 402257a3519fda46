"""Which peer messages a node steps (nodes/peerfilter.py), as tables: members always, a
stranger never, a leader this node does not count as a member yet only for its replication
traffic, a removed member only as the leader of a later term (it was added back)."""

from __future__ import annotations

import pytest

from nodes.peerfilter import PeerFilter
from nodes.raft import ConfChange, ConfChangeType, ConfState, Message, MessageType

MT = MessageType
ADD, REMOVE, LEARNER = ConfChangeType.ADD_NODE, ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER_NODE


def three() -> PeerFilter:
    """n1's view: --peers n1..n4 (n4 a spare), members n1..n3, n5 learnt from a conf change."""
    f = PeerFilter(1, {2, 3, 4})
    f.set_conf(ConfState((1, 2, 3)))
    return f


def msg(t: MessageType, frm: int, term: int = 5, to: int = 1) -> Message:
    return Message(t, to=to, from_=frm, term=term)


@pytest.mark.parametrize(
    ("m", "ok"),
    [
        (msg(MT.HEARTBEAT, 2), True),
        (msg(MT.VOTE, 3, term=1000), True),  # a member: Raft itself judges the term
        (msg(MT.HEARTBEAT, 99, term=1000), False),  # a stranger: never
        (msg(MT.VOTE, 99), False),
        (msg(MT.HEARTBEAT, 2, to=3), False),  # not for us
        (msg(MT.HEARTBEAT, 1), False),  # "from us", over the network
        (msg(MT.APP, 4), True),  # a leader we do not count as a member yet
        (msg(MT.SNAP, 4), True),
        (msg(MT.TIMEOUT_NOW, 4), True),
        (msg(MT.VOTE, 4), False),  # but not its votes: it is not a member here
        (msg(MT.PRE_VOTE, 4), False),
        (msg(MT.APP_RESP, 4), False),
        (msg(MT.PROP, 4), False),
    ],
)
def test_message_admission(m: Message, ok: bool) -> None:
    assert three().admit(m) is ok


def test_handshake_admits_known_ids_only() -> None:
    f = three()
    assert [p for p in range(0, 7) if f.admit_peer(p)] == [2, 3, 4]
    f.known.add(5)  # learnt from a conf change's context
    assert f.admit_peer(5)


def test_removed_member_is_dropped_until_it_leads_a_later_term() -> None:
    f = three()
    f.conf_change(ConfChange(REMOVE, 3), term=7, conf=ConfState((1, 2)))
    assert not f.admit(msg(MT.VOTE, 3, term=8))  # its campaign cannot disrupt us
    assert not f.admit(msg(MT.HEARTBEAT, 3, term=7))  # nor can it lead the term it was removed in
    assert not f.admit(msg(MT.APP_RESP, 3, term=9))
    assert f.admit(msg(MT.APP, 3, term=9))  # added back elsewhere, leading a later term
    assert f.admit_peer(3)  # the connection stays possible: it may be added back
    f.conf_change(ConfChange(ADD, 3), term=9, conf=ConfState((1, 2, 3)))
    assert f.admit(msg(MT.VOTE, 3, term=9)) and 3 not in f.removed


def test_learner_is_a_member() -> None:
    f = three()
    f.conf_change(ConfChange(LEARNER, 4), term=6, conf=ConfState((1, 2, 3), (4,)))
    assert f.admit(msg(MT.APP_RESP, 4))


def test_new_member_without_a_configuration_takes_the_leader() -> None:
    f = PeerFilter(4, {1, 2, 3})  # started with --join: no configuration yet
    assert f.admit(msg(MT.APP, 1, to=4)) and f.admit(msg(MT.HEARTBEAT, 2, to=4))
    assert not f.admit(msg(MT.VOTE, 1, to=4))
    assert not f.admit(msg(MT.APP, 9, to=4))


def test_snapshot_records_members_it_lacks_as_removed() -> None:
    f = three()
    f.snapshot(ConfState((1, 2), (4,)), term=8)
    assert f.members == {1, 2, 4} and f.removed == {3: 8}
    assert not f.admit(msg(MT.HEARTBEAT, 3, term=8))


def test_removed_member_heard_like_a_member_when_asked() -> None:
    f = three()
    f.drop_removed = False  # --no-drop-removed-peers
    f.conf_change(ConfChange(REMOVE, 3), term=7, conf=ConfState((1, 2)))
    assert f.admit(msg(MT.VOTE, 3, term=8))
    assert not f.admit(msg(MT.VOTE, 99))  # strangers stay out
