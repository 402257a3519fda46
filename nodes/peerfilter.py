"""Which peers and peer messages a node accepts: members, and leaders it cannot know yet.

Raft itself trusts every message it is handed: one heartbeat from a stranger at a higher term
deposes a leader. The node therefore hands it only messages from members of its applied
configuration (voters and learners), with one exception a membership change needs: a node
whose configuration lags -- a new member that has none yet, or a follower that has not yet
applied the addition of the current leader -- must take a leader's replication traffic from
an id it knows an address for (--peers, or learnt from a conf change) but not as a member.

A removed member's messages are dropped, as etcd drops those of an id it recorded as removed
(its server refuses them with "removed member"): its votes can no longer disrupt the group.
raftkv reuses node names, so a re-added id is a member again; and since a removed node that
was added back may lead a later term before this node applies its return, a removed id's
leader traffic of a later term than its removal is let through like any unknown leader's.

Owned by the node loop thread. Pure: no I/O, so it is tested with tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nodes.raft import NONE, ConfChange, ConfChangeType, ConfState, Message, MessageType

MT = MessageType

# What a leader sends to its followers (and a transfer target): a node whose configuration
# lags needs exactly these from a leader it does not count as a member yet.
FROM_LEADER = frozenset({MT.APP, MT.HEARTBEAT, MT.SNAP, MT.TIMEOUT_NOW, MT.READ_INDEX_RESP})


@dataclass
class PeerFilter:
    self_id: int
    known: set[int]  # ids with an address (--peers, conf change contexts); may grow
    members: frozenset[int] = frozenset()  # voters and learners of the applied configuration
    removed: dict[int, int] = field(default_factory=dict)  # id -> term of its removal entry
    drop_removed: bool = True  # False: a removed member is heard like a member (--no-drop-removed-peers)

    def set_conf(self, conf: ConfState) -> None:
        self.members = frozenset(conf.voters) | frozenset(conf.learners)

    def conf_change(self, cc: ConfChange, term: int, conf: ConfState) -> None:
        """An applied conf change (entry of `term`) that produced `conf`."""
        if cc.node_id != NONE:
            if cc.type == ConfChangeType.REMOVE_NODE:
                self.removed[cc.node_id] = term
            elif cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
                self.removed.pop(cc.node_id, None)
        self.set_conf(conf)

    def snapshot(self, conf: ConfState, term: int) -> None:
        """An installed snapshot (of `term`): members it lacks were removed before it."""
        new = frozenset(conf.voters) | frozenset(conf.learners)
        for gone in self.members - new:
            self.removed.setdefault(gone, term)
        for m in new:
            self.removed.pop(m, None)
        self.members = new

    def admit_peer(self, peer: int) -> bool:
        """May a connection that says it is `peer` talk to us at all (transport handshake)?
        Ids never configured anywhere (a stranger, a typo) are refused outright."""
        return peer != self.self_id and (peer in self.members or peer in self.known)

    def admit(self, m: Message) -> bool:
        """Is this message from the network one to step (its sender already identified)?"""
        sender = m.from_
        if m.to != self.self_id or sender == self.self_id:
            return False
        if sender in self.members or (not self.drop_removed and sender in self.removed):
            return True
        if m.type not in FROM_LEADER or sender not in self.known:
            return False
        removed_at = self.removed.get(sender)
        return removed_at is None or m.term > removed_at
