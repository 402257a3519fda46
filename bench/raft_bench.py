"""Benchmarks of the Raft core (nodes.raft): many idle groups per process, and a 3-node
in-memory cluster committing batched proposals.

Usage: python bench/raft_bench.py [--groups 10000] [--batches 200] [--batch-size 64]
Results go to stdout as a Markdown table (copy into docs/benchmarks.md, "Raft core").
"""

from __future__ import annotations

import argparse
import gc
import logging
import platform
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from nodes.raft import (
    Config,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    StateType,
    codec,
    rand,
)

log = logging.getLogger("raft_bench")


def drain_ready(rn: RawNode, st: MemoryStorage) -> list[Message]:
    """One application Ready loop: persist, apply conf changes, advance; returns messages."""
    out: list[Message] = []
    for _ in range(8):
        if not rn.has_ready():
            break
        rd = rn.ready()
        if not rd.snapshot.is_empty():
            st.apply_snapshot(rd.snapshot)
        st.append(rd.entries)
        if not rd.hard_state.is_empty():
            st.set_hard_state(rd.hard_state)
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                rn.apply_conf_change(codec.decode_conf_change(e.data))
        out.extend(rd.messages)
        rn.advance(rd)
    return out


def idle_follower() -> RawNode:
    st = MemoryStorage()
    rn = RawNode(Config(id=1, storage=st, check_quorum=True, pre_vote=True))
    rn.bootstrap([1, 2, 3])
    drain_ready(rn, st)
    return rn


def idle_leader() -> RawNode:
    """Node 1 of a 3-voter group, elected and with its empty entry acknowledged."""
    st = MemoryStorage()
    rn = RawNode(Config(id=1, storage=st, check_quorum=True))
    rn.bootstrap([1, 2, 3])
    drain_ready(rn, st)
    rn.campaign()
    drain_ready(rn, st)
    term = rn.raft.term
    rn.step(Message(MessageType.VOTE_RESP, to=1, from_=2, term=term))
    drain_ready(rn, st)
    last = rn.raft.raft_log.last_index()
    for peer in (2, 3):
        rn.step(Message(MessageType.APP_RESP, to=1, from_=peer, term=term, index=last))
    drain_ready(rn, st)
    assert rn.raft.state == StateType.LEADER and rn.raft.raft_log.committed == last
    return rn


@dataclass
class GroupResult:
    kind: str
    groups: int
    bytes_per_group: float
    tick_ms: float
    quiesced_ms: float


def bench_groups(kind: str, make: Callable[[], RawNode], n: int) -> GroupResult:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    groups = [make() for _ in range(n)]
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    # tick(): followers only advance clocks (no campaign within one sweep); leaders
    # heartbeat, so their messages are dropped between sweeps as a transport would send them.
    # CPU time of this process (the machine is shared, so wall-clock time mostly measures
    # the other tenants); the best of several sweeps.
    sweeps = 5
    tick_ms = quiesced_ms = float("inf")
    for _ in range(sweeps):
        t0 = time.process_time()
        for rn in groups:
            rn.tick()
        tick_ms = min(tick_ms, (time.process_time() - t0) * 1000)
        if kind == "leader":
            for rn in groups:
                rn.raft.msgs.clear()
    for _ in range(sweeps):
        t0 = time.process_time()
        for rn in groups:
            rn.tick_quiesced()
        quiesced_ms = min(quiesced_ms, (time.process_time() - t0) * 1000)
    return GroupResult(kind, n, used / n, tick_ms, quiesced_ms)


@dataclass
class ClusterResult:
    batches: int
    batch_size: int
    steps: int
    seconds: float
    committed: int


def bench_cluster(batches: int, batch_size: int, payload: int = 128) -> ClusterResult:
    stores = {i: MemoryStorage() for i in (1, 2, 3)}
    nodes = {i: RawNode(Config(id=i, storage=stores[i])) for i in (1, 2, 3)}
    for rn in nodes.values():
        rn.bootstrap([1, 2, 3])
    steps = 0

    def pump() -> None:
        nonlocal steps
        for _ in range(10_000):
            msgs: list[Message] = []
            for i, rn in nodes.items():
                msgs.extend(drain_ready(rn, stores[i]))
            if not msgs:
                return
            for m in msgs:
                nodes[m.to].step(m)
                steps += 1
        raise RuntimeError("cluster did not quiesce")

    pump()
    nodes[1].campaign()
    pump()
    leader = nodes[1]
    assert leader.raft.state == StateType.LEADER
    start_commit = leader.raft.raft_log.committed
    data = b"x" * payload
    steps = 0
    t0 = time.process_time()
    for _ in range(batches):
        for _ in range(batch_size):
            leader.propose(data)
        pump()
    secs = time.process_time() - t0
    committed = leader.raft.raft_log.committed - start_commit
    assert committed == batches * batch_size, committed
    return ClusterResult(batches, batch_size, steps, secs, committed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rand.seed(1)
    print(f"python {platform.python_version()} on {platform.machine()}")
    print("| groups (3 voters) | bytes/group | tick() sweep (CPU) | tick_quiesced() sweep (CPU) |")
    print("|---|---|---|---|")
    for kind, make in (("follower", idle_follower), ("leader", idle_leader)):
        g = bench_groups(kind, make, args.groups)
        print(f"| {g.groups} idle {g.kind}s | {g.bytes_per_group:,.0f} B | "
              f"{g.tick_ms:.1f} ms | {g.quiesced_ms:.1f} ms |")
    c = bench_cluster(args.batches, args.batch_size)
    print()
    print("| cluster | batches x size | steps | CPU seconds | steps/s | entries/s |")
    print("|---|---|---|---|---|---|")
    print(f"| 3 nodes in memory | {c.batches} x {c.batch_size} (128 B) | {c.steps} | "
          f"{c.seconds:.2f} | {c.steps / c.seconds:,.0f} | {c.committed / c.seconds:,.0f} |")


if __name__ == "__main__":
    main()
