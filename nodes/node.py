"""The node loop: one thread owns the RawNode, the WAL, the state machine and the event log.

The loop thread waits on a Poller (nodes/poller.py) and reads peer frames itself; other
threads (client and admin handlers, peer senders) append items to the inbox and wake it.
Each iteration drains the whole inbox into the RawNode (so many proposals share one fsync:
group commit), ticks on the node's steady clock (nodes/steadyclock.py: the monotonic clock,
never stepping back), then handles Ready in etcd's order: persist
snapshot, entries and hard state, fsync if must_sync, send messages, apply committed
entries, advance -- except that a leader's appends are sent before its fsync
(nodes/early_send.py).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from nodes import snap
from nodes.early_send import split_messages
from nodes.events import EventLog, digest, node_name
from nodes.fdwait import FdEvent, join_within
from nodes.fsutil import fsync_dir
from nodes.kv import KVStore
from nodes.options import NodeConfig
from nodes.peerfilter import PeerFilter
from nodes.pending import ConfWait, Pending, ReadWait, WriteWait
from nodes.poller import Poller
from nodes.protocol import ProtocolError, Reply, Request, decode_command, encode_command
from nodes.raft import (
    NONE,
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProposalDropped,
    RaftError,
    RawNode,
    ReadOnlyOption,
    Ready,
    StateType,
    codec,
)
from nodes.ratelog import Throttled
from nodes.recovery import DiskState, lock_data_dir, next_boot, recover
from nodes.snapwriter import SnapshotWriter
from nodes.steadyclock import SteadyClock
from nodes.transport import Transport
from nodes.wal import SNAP_INSTALL, SNAP_LOCAL, WalSnapshot

log = logging.getLogger(__name__)

ROLE_NAMES = {
    StateType.FOLLOWER: "follower",
    StateType.PRE_CANDIDATE: "pre-candidate",
    StateType.CANDIDATE: "candidate",
    StateType.LEADER: "leader",
}
AUTO_COMPACT_KEEP = 200  # entries kept behind an automatic snapshot for slow followers
MAX_DRAIN = 4096


@dataclass
class _Admin:
    fn: Callable[[], Any]
    future: Future[Any]


@dataclass
class _Unreachable:
    peer: int


@dataclass
class _SnapStatus:
    peer: int
    ok: bool


@dataclass
class _Get:
    req: Request
    future: Future[Reply]
    deadline: float


@dataclass
class _Stop:
    pass


@dataclass
class _LocalSnapDone:
    index: int
    term: int
    durable: bool


class NodeError(Exception):
    """The node cannot start (bad data dir, Raft config rejected)."""


class Node:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self._lock_fd = lock_data_dir(cfg.data_dir)
        # recovery first: a boot counter on disk then proves that a WAL existed (recovery
        # refuses a data dir that ran before and lost its WAL)
        disk: DiskState = recover(cfg.data_dir, check_crc=not cfg.bugs.skip_wal_crc)
        self.boot = next_boot(cfg.data_dir)
        if disk.torn_bytes:
            log.warning("recovery: truncated a torn WAL tail of %d bytes", disk.torn_bytes)
        self.disk = disk
        self.wal = disk.wal
        self.storage = disk.storage
        self.kv = KVStore()
        if disk.kv_data:
            self.kv.restore(disk.kv_data)
        self.applied = disk.snapshot_index
        self.snapshot_index = disk.snapshot_index
        self.conf_state = disk.conf_state
        self.events = EventLog(cfg.events, cfg.name, self.boot)
        read_opt = ReadOnlyOption.LEASE_BASED if cfg.read_mode == "lease" else ReadOnlyOption.SAFE
        rcfg = Config(
            id=cfg.raft_id,
            storage=self.storage,
            election_tick=cfg.election_tick,
            heartbeat_tick=cfg.heartbeat_tick,
            applied=self.applied,
            check_quorum=cfg.check_quorum,
            pre_vote=cfg.pre_vote,
            read_only_option=read_opt,
            step_down_on_removal=True,
            max_size_per_msg=cfg.max_size_per_msg,
            bugs=cfg.bugs.core,
        )
        # a data dir first started with --join must never bootstrap a cluster of its own
        # later (a restart without --join before it received anything would fork the log)
        joined = cfg.data_dir / "joined"
        if disk.fresh and cfg.join and not joined.exists():
            joined.touch()
            fsync_dir(cfg.data_dir)
        try:
            self.rn = RawNode(rcfg)
            if disk.fresh and not cfg.join and not joined.exists():
                self.rn.bootstrap(sorted(cfg.peers))
        except RaftError as e:
            raise NodeError(f"raft: {e}") from e
        # items from other threads; deque appends are atomic, the poller wakes the loop
        self.inbox: deque[Any] = deque()
        self.poller = Poller()
        self.pending = Pending()
        self._proposals: list[tuple[str, WriteWait]] = []  # this iteration's writes
        self._rid = itertools.count(1)
        # request ids must never repeat, also after a wipe resets the boot counter: a random
        # per-process nonce keeps an old incarnation's entry from answering a new request
        self._rid_prefix = f"{cfg.name}.{self.boot}.{os.urandom(4).hex()}"
        self.role = StateType.FOLLOWER
        self.lead = 0
        self.term = disk.hard_state.term
        self.commit = disk.hard_state.commit
        self.commit_durable = self.commit
        self._synced = False
        self._wal_unsynced = False  # only with the seeded bug ack-before-fsync
        self.last_vote = (disk.hard_state.term, disk.hard_state.vote)
        self.quiesced = False
        # which peers and peer messages reach the RawNode (nodes/peerfilter.py)
        self.peer_filter = PeerFilter(
            cfg.raft_id, set(cfg.peers) - {cfg.raft_id}, removed=dict(disk.removed), drop_removed=cfg.drop_removed_peers
        )
        self.peer_filter.set_conf(disk.boot_conf)
        self._dropped = Throttled(log)
        self.clock = SteadyClock()
        self.stopped = FdEvent()  # set when the loop has shut down
        try:
            self.transport = Transport(
                cfg.listen,
                {k: v for k, v in cfg.peers.items() if k != cfg.raft_id},
                on_frame=self._on_frame,
                on_unreachable=lambda p: self.post(_Unreachable(p)),
                on_snapshot_status=lambda p, ok: self.post(_SnapStatus(p, ok)),
                poller=self.poller,
                local_id=cfg.raft_id,
                token=cfg.token,
                admit=self.peer_filter.admit_peer,
            )
        except OSError as e:
            raise NodeError(f"--listen {cfg.listen[0]}:{cfg.listen[1]}: {e.strerror or e}") from e
        self._thread = threading.Thread(target=self._loop, name="raft-loop", daemon=True)
        self.snap_writer = SnapshotWriter(
            cfg.data_dir / "snap", lambda i, t, ok: self.post(_LocalSnapDone(i, t, ok)),
            sync_data=not cfg.bugs.snapshot_rename_before_fsync,
        )
        hs = disk.hard_state
        self.events.emit(
            "boot",
            flush=True,
            term=hs.term,
            vote=node_name(hs.vote) if hs.vote else None,
            commit=hs.commit,
            voters=[node_name(v) for v in disk.boot_conf.voters],
            learners=[node_name(v) for v in disk.boot_conf.learners],
            snapshot_index=disk.snapshot_index,
            last_index=self.storage.last_index(),
        )
        log.info(
            "boot %d: term=%d vote=%d commit=%d snapshot=%d last=%d",
            self.boot, hs.term, hs.vote, hs.commit, disk.snapshot_index, self.storage.last_index(),
        )

    # ---- called from other threads ----

    def start(self) -> None:
        self.transport.start()
        self._thread.start()

    def stop(self) -> None:
        self.post(_Stop())
        join_within(self._thread, self.stopped, 5.0)
        self.transport.stop()
        self.poller.close()

    def post(self, item: Any) -> None:
        """Hand an item to the loop thread (from any thread)."""
        self.inbox.append(item)
        self.poller.wake()

    def _on_frame(self, payload: bytes, sender: int | None) -> None:
        """Called on the loop thread itself (the transport reads through our poller).
        Only messages the Raft core can take without harm reach it: from a peer it may hear
        from (nodes/peerfilter.py), claiming no other sender than the link's hello named."""
        try:
            m = codec.decode_message(payload)
        except ValueError as e:
            self._dropped.warning("undecodable", "transport: undecodable peer message dropped: %s", e)
            return
        if sender is not None and m.from_ != sender:
            self._dropped.warning("spoofed", "transport: message claiming n%d on n%d's link dropped", m.from_, sender)
            return
        if not self.peer_filter.admit(m):
            self._dropped.warning(
                f"refused-{m.from_}", "transport: %s from n%d (term %d) dropped: not a member here",
                m.type.name, m.from_, m.term,
            )
            return
        if m.type == MessageType.SNAP and (m.snapshot is None or not KVStore.valid_snapshot(m.snapshot.data)):
            self._dropped.warning("bad-snapshot", "transport: snapshot from n%d dropped: its data is unusable", m.from_)
            return
        self.inbox.append(m)

    def submit(self, req: Request, from_loop: bool = False) -> Future[Reply]:
        """Queue a client request; the future is completed on the loop thread."""
        fut: Future[Reply] = Future()
        deadline = self.clock.now() + self.cfg.request_timeout
        item = _Get(req, fut, deadline) if req.op == "get" else WriteWait(req, fut, deadline)
        if from_loop:
            self.inbox.append(item)  # drained in this same iteration: no wake-up needed
        else:
            self.post(item)
        return fut

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run fn on the loop thread (admin operations need a consistent RawNode)."""
        fut: Future[Any] = Future()
        self.post(_Admin(fn, fut))
        return fut

    # ---- the loop ----

    def _loop(self) -> None:
        tick = self.cfg.tick_interval_ms / 1000.0
        clock = self.clock
        next_tick = clock.now() + tick
        try:
            inbox = self.inbox
            while True:
                # peer frames read here land in the inbox too
                self.poller.wait(0.0 if inbox else max(0.0, next_tick - clock.now()))
                stop = False
                n = 0
                while inbox and n < MAX_DRAIN:
                    item = inbox.popleft()
                    if isinstance(item, _Stop):
                        stop = True
                    else:
                        self._handle(item)
                    n += 1
                self._flush_proposals()
                self._flush_reads()
                now = clock.now()
                if now >= next_tick:
                    if self.quiesced:
                        self.rn.tick_quiesced()
                    else:
                        self.rn.tick()
                    next_tick += tick
                    if next_tick <= now:
                        next_tick = now + tick  # a jump forward (or a stall) is one tick, not a burst
                    self.pending.expire(now, self._leader_hint())
                    self._sync_commit()
                while self.rn.has_ready():
                    self._handle_ready(self.rn.ready())
                self.pending.serve_reads(self.applied, self.kv.get)
                self.events.maybe_flush()
                if stop:
                    break
        except Exception:
            log.exception("node loop crashed; stopping")
            raise
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.snap_writer.stop()
        try:
            self.wal.close()  # fsyncs: the last commit index is durable now
            self._commit_event()
        except OSError as e:
            log.warning("wal close: %s", e)
        self.events.close()
        self.stopped.set()

    def _handle(self, item: Any) -> None:
        if isinstance(item, WriteWait):
            self._propose(item)
        elif isinstance(item, _Get):
            self._read(item.req, item.future, item.deadline)
        elif isinstance(item, _Unreachable):
            self.rn.report_unreachable(item.peer)
        elif isinstance(item, _LocalSnapDone):
            self._local_snapshot_durable(item)
        elif isinstance(item, _SnapStatus):
            self.rn.report_snapshot(item.peer, item.ok)
        elif isinstance(item, _Admin):
            try:
                item.future.set_result(item.fn())
            except Exception as e:  # the admin caller gets the error, the loop carries on
                item.future.set_exception(e)
        else:
            try:
                self.rn.step(item)
            except RaftError as e:
                log.debug("step %s from n%d: %s", item.type.name, item.from_, e)

    def _leader_hint(self) -> str | None:
        return node_name(self.lead) if self.lead else None

    def _propose(self, w: WriteWait) -> None:
        self._proposals.append((self.next_rid(), w))

    def _flush_proposals(self) -> None:
        """Every write that arrived in this iteration goes into one proposal, so the leader
        sends one append per follower for all of them (and a follower forwards one MsgProp)."""
        if not self._proposals:
            return
        batch, self._proposals = self._proposals, []
        try:
            self.rn.propose_batch([encode_command(rid, w.req) for rid, w in batch])
        except ProposalDropped:
            hint = self._leader_hint()
            for _, w in batch:
                w.future.set_result(Reply("fail", error="not-leader", leader=hint))
            return
        for rid, w in batch:
            self.pending.writes[rid] = w

    def _read(self, req: Request, fut: Future[Reply], deadline: float) -> None:
        mode = req.read or self.cfg.read_mode
        if mode == "serializable":
            fut.set_result(Reply("ok", self.kv.get(req.key)))
            return
        if self.cfg.bugs.stale_read and self.role == StateType.LEADER:
            fut.set_result(Reply("ok", self.kv.get(req.key)))  # BUG stale-read: no ReadIndex
            return
        if self.lead == 0:
            fut.set_result(Reply("fail", error="not-leader", leader=None))
            return
        self.pending.reads_batch.append(ReadWait(req.key, fut, deadline))

    def _flush_reads(self) -> None:
        """One ReadIndex round for every read that arrived in this iteration."""
        if not self.pending.reads_batch:
            return
        ctx = self.next_rid().encode()
        if self.pending.take_read_batch(ctx):
            self.rn.read_index(ctx)

    # ---- Ready ----

    def _handle_ready(self, rd: Ready) -> None:
        if rd.soft_state is not None:
            self.lead = rd.soft_state.lead
            role_changed = rd.soft_state.raft_state != self.role
            self.role = rd.soft_state.raft_state
        else:
            role_changed = False
        if not rd.snapshot.is_empty():
            self._install_snapshot(rd)
        hs = rd.hard_state
        # the leader's appends go out while its own write is fsynced (see nodes/early_send.py)
        early, late = split_messages(rd, self.role, self.rn.prev_hard_state)
        if self.cfg.bugs.vote_not_durable and not hs.is_empty():
            # BUG vote-not-durable: the vote never reaches the disk and is not waited for
            self.wal.save(HardState(hs.term, 0, hs.commit), rd.entries)
            must_sync = bool(rd.entries)
        else:
            self.wal.save(None if hs.is_empty() else hs, rd.entries)
            must_sync = rd.must_sync
        self._send(early)
        # entries committed in earlier Readys are already on this disk (their Ready was
        # fsynced before the loop stepped anything further): apply them, and answer their
        # clients, while this Ready's own entries are being fsynced, as etcd does
        applied_early = self._apply_durable(rd)
        if must_sync and self._fsync_deferred(hs):
            # BUG ack-before-fsync: taken as durable now, fsynced at the next tick
            self._wal_unsynced = True
            self._synced = True
        elif must_sync:
            self.wal.sync()
            self._wal_unsynced = False
            self._synced = True
        else:
            self._synced = False
        if rd.entries:
            self.storage.append(rd.entries)
        if not hs.is_empty():
            self.storage.set_hard_state(hs)
        self._durable_events(hs, role_changed or rd.soft_state is not None)
        if self._synced:
            self._commit_event()
        self._send(late)
        for rs in rd.read_states:
            self.pending.read_state(rs.request_ctx, rs.index)
        if len(rd.committed_entries) > applied_early:
            self._apply(rd.committed_entries[applied_early:])
        self.rn.advance(rd)
        if self.applied - self.snapshot_index >= self.cfg.snapshot_count and not self.snap_writer.busy:
            self.compact(keep=AUTO_COMPACT_KEEP, background=True)

    def _fsync_deferred(self, hs: HardState) -> bool:
        """The seeded bug ack-before-fsync skips the fsync of a Ready that only appends
        entries or moves the commit index (a term or vote change is still fsynced)."""
        if not self.cfg.bugs.ack_before_fsync:
            return False
        prev = self.rn.prev_hard_state
        return hs.is_empty() or (hs.term, hs.vote) == (prev.term, prev.vote)

    def _apply_durable(self, rd: Ready) -> int:
        """Apply the committed entries of rd that an earlier Ready made durable; how many.

        Only in the steady state (no snapshot, role, term or vote change in rd), so the
        event log keeps its order relative to role and vote events."""
        ents = rd.committed_entries
        if not ents or rd.soft_state is not None or not rd.snapshot.is_empty():
            return 0
        hs, prev = rd.hard_state, self.rn.prev_hard_state
        if not hs.is_empty() and (hs.term, hs.vote) != (prev.term, prev.vote):
            return 0
        n = len(ents)
        if rd.entries:
            first_new = rd.entries[0].index
            n = 0
            while n < len(ents) and ents[n].index < first_new:
                n += 1
        if n:
            self._apply(ents[:n])
        return n

    def _send(self, msgs: list[Message]) -> None:
        """One write per peer: each frame sent alone would wake the receiver once per message."""
        batches: dict[int, list[bytes]] = {}
        for m in msgs:
            if m.to == self.cfg.raft_id:
                continue
            if m.type == MessageType.SNAP:
                self.transport.send(m.to, codec.encode_message(m), snapshot=True)
                continue
            batches.setdefault(m.to, []).append(codec.encode_message(m))
        for to, payloads in batches.items():
            self.transport.send_batch(to, payloads)

    def _durable_events(self, hs: HardState, soft_changed: bool) -> None:
        term_changed = not hs.is_empty() and hs.term != self.term
        if not hs.is_empty():
            self.term = hs.term
            if hs.vote and (hs.term, hs.vote) != self.last_vote:
                self.last_vote = (hs.term, hs.vote)
                self.events.emit("vote", flush=True, term=hs.term, **{"for": node_name(hs.vote)})
            if hs.commit > self.commit:
                self.commit = hs.commit
        if soft_changed or term_changed:
            self.events.emit(
                "role",
                flush=True,
                role=ROLE_NAMES[self.role],
                term=self.term,
                lead=self._leader_hint(),
            )
            if self.role != StateType.LEADER:
                log.info("n%d is %s in term %d (lead %s)", self.cfg.raft_id, ROLE_NAMES[self.role], self.term, self.lead)
            else:
                log.info("n%d is leader in term %d", self.cfg.raft_id, self.term)

    def _commit_event(self) -> None:
        """Report the commit index once a hard state holding it is on disk (fsynced)."""
        if self.commit > self.commit_durable:
            self.commit_durable = self.commit
            # the hard state now on disk carries the current term (events' terms never go back)
            self.events.emit("commit", index=self.commit, term=self.term)

    def _sync_commit(self) -> None:
        """Commit-only hard states are not fsynced at once (as in etcd); sync them per tick
        so the commit event still follows promptly when there is nothing else to sync."""
        if self._wal_unsynced:  # the seeded bug ack-before-fsync syncs here, a tick late
            self.wal.sync()
            self._wal_unsynced = False
        if self.commit > self.commit_durable:
            self.wal.sync()
            self._commit_event()

    def _install_snapshot(self, rd: Ready) -> None:
        s = rd.snapshot
        md = s.metadata
        self.peer_filter.snapshot(md.conf_state, md.term)
        snap.save(
            self.cfg.data_dir / "snap",
            snap.SnapshotFile(
                md.index, md.term, md.conf_state.voters, md.conf_state.learners, s.data,
                dict(self.peer_filter.removed),
            ),
            sync_data=not self.cfg.bugs.snapshot_rename_before_fsync,
        )
        self.wal.save_snapshot(WalSnapshot(md.index, md.term, SNAP_INSTALL))
        self.storage.apply_snapshot(s)
        self.kv.restore(s.data)
        self.applied = md.index
        self.snapshot_index = md.index
        self.conf_state = md.conf_state
        self.events.emit("snapshot", flush=True, index=md.index, term=md.term, source="leader")
        self._conf_event(md.index)
        log.info("installed snapshot at index %d term %d from the leader", md.index, md.term)

    def _apply(self, ents: list[Entry]) -> None:
        for e in ents:
            if e.index <= self.applied:
                continue
            if e.type == EntryType.CONF_CHANGE:
                self._apply_conf(e)
                kind = "conf"
            elif not e.data:
                kind = "empty"
            else:
                self._apply_write(e)
                kind = "normal"
            self.applied = e.index
            self.events.emit("apply", index=e.index, term=e.term, digest=digest(e.data), kind=kind)

    def _apply_write(self, e: Entry) -> None:
        try:
            cmd = decode_command(e.data)
        except ProtocolError as err:
            log.error("entry %d is not a command (%s); skipped by every replica alike", e.index, err)
            return
        reply = self.kv.apply(cmd)
        self.pending.write_applied(str(cmd.get("rid", "")), reply)

    def _apply_conf(self, e: Entry) -> None:
        try:
            cc = codec.decode_conf_change(e.data)
        except ValueError as err:
            # only a log written before conf changes were validated holds such an entry;
            # every replica skips it alike (an empty change), as for a bad command
            log.error("entry %d is not a conf change (%s); skipped by every replica alike", e.index, err)
            cc = ConfChange(ConfChangeType.ADD_NODE, NONE)
        self.conf_state = self.rn.apply_conf_change(cc)
        self.peer_filter.conf_change(cc, e.term, self.conf_state)
        ctx: dict[str, Any] = {}
        if cc.context:
            try:
                ctx = json.loads(cc.context)
            except ValueError:
                ctx = {}
        peer = ctx.get("peer")
        # each node's own --peers entry wins: on the local provider every directed link is
        # its own proxy address, so the proposer's view of the address is not ours
        if isinstance(peer, str) and cc.node_id != self.cfg.raft_id and cc.node_id not in self.cfg.peers:
            host, _, port = peer.rpartition(":")
            if host and port.isdigit():
                self.transport.set_peer(cc.node_id, (host, int(port)))
                self.peer_filter.known.add(cc.node_id)
        self._conf_event(e.index)
        self.pending.conf_applied(str(ctx.get("rid", "")), self._conf_dict())

    def _conf_dict(self) -> dict[str, list[str]]:
        return {
            "voters": [node_name(v) for v in sorted(self.conf_state.voters)],
            "learners": [node_name(v) for v in sorted(self.conf_state.learners)],
        }

    def _conf_event(self, index: int) -> None:
        self.events.emit("conf", flush=True, index=index, **self._conf_dict())

    # ---- operations run on the loop thread (admin) ----

    def compact(self, keep: int = 0, background: bool = False) -> dict[str, int]:
        """Snapshot the state machine at the applied index and drop the log behind it.

        With background, the file is written by the snapshot writer and the WAL learns of
        it (and releases segments) once it is durable; the admin API's compaction waits."""
        idx = self.applied
        if idx <= self.snapshot_index:
            return {"index": self.snapshot_index, "compacted": 0}
        data = self.kv.snapshot()
        s = self.storage.create_snapshot(idx, self.conf_state, data)
        md = s.metadata
        sf = snap.SnapshotFile(
            idx, md.term, self.conf_state.voters, self.conf_state.learners, data, dict(self.peer_filter.removed)
        )
        if background:
            self.snap_writer.submit(sf)
        else:
            snap.save(self.cfg.data_dir / "snap", sf, sync_data=not self.cfg.bugs.snapshot_rename_before_fsync)
        self.snapshot_index = idx
        upto = idx - keep
        if upto >= self.storage.first_index():
            self.storage.compact(upto)  # in memory only: the WAL keeps the entries for now
        if not background:
            self._local_snapshot_durable(_LocalSnapDone(idx, md.term, True))
        return {"index": idx, "compacted": max(0, upto)}

    def _local_snapshot_durable(self, done: _LocalSnapDone) -> None:
        """The snapshot file at done.index is on disk: record it and release the WAL."""
        if done.index == self.snap_writer.pending_index:
            self.snap_writer.busy = False
        if not done.durable or done.index <= self.wal.snapshot_index:
            return  # failed (logged), or a newer snapshot was recorded meanwhile
        self.wal.save_snapshot(WalSnapshot(done.index, done.term, SNAP_LOCAL), sync=False)
        self.wal.release_to(done.index)
        self.events.emit("snapshot", flush=True, index=done.index, term=done.term, source="local")
        log.info("snapshot at index %d durable; WAL released up to it", done.index)

    def propose_conf(self, cc: ConfChange, rid: str, fut: Future[Any]) -> None:
        try:
            self.rn.propose_conf_change(cc)
        except ProposalDropped:
            fut.set_exception(ProposalDropped(f"not leader (leader {self._leader_hint()})"))
            return
        self.pending.confs[rid] = ConfWait(fut, self.clock.now() + 2 * self.cfg.request_timeout)

    def next_rid(self) -> str:
        return f"{self._rid_prefix}.{next(self._rid)}"
