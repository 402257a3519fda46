"""raftkv under faked clocks, run as the providers run it (libfaketime and the clock agent,
harness/providers/clock.py): Raft ticks follow each node's own clock rate, a node's clock
outlives its process, steps of minutes either way hang nothing, a strobing clock leaves the
cluster responsive, and a reset makes every clock true again."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.providers.clock import ClockOp, LocalClocks, find_libfaketime
from tests.support.raftkv_cluster import Cluster, put_with_retry

pytestmark = pytest.mark.slow

TICK_MS = 20


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[Cluster, LocalClocks]]:
    lib = find_libfaketime()
    if lib is None:
        pytest.skip("needs libfaketime (Debian package libfaketime)")
    clocks = LocalClocks(tmp_path / "clocks", lib)
    reason = clocks.probe()
    if reason is not None:
        pytest.skip(f"libfaketime unusable here: {reason}")
    c = Cluster(tmp_path / "cluster", extra=["--tick-interval-ms", str(TICK_MS)], clocks=clocks)
    for n in c.members:
        clocks.init(n)
    try:
        c.start_all()
        yield c, clocks
    finally:
        c.close()


def change(clocks: LocalClocks, node: str, *ops: ClockOp) -> None:
    """Append ops and wait until the node's agent applied them."""
    before = clocks.state(node)
    want = (before.applied if before else 0) + len(ops)
    clocks.append(node, ops)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        st = clocks.state(node)
        if st is not None and st.applied >= want:
            return
        time.sleep(0.02)
    raise AssertionError(f"{node}: the clock agent did not apply {ops} within 5 s")


def sample(c: Cluster, name: str, timeout: float = 5.0) -> tuple[float, dict[str, Any]]:
    """(real time of the reading, the node's status)."""
    deadline = time.monotonic() + timeout
    while True:
        t0 = time.time()
        st = c.status(name)
        t1 = time.time()
        if st is not None:
            return (t0 + t1) / 2, st
        assert time.monotonic() < deadline, f"{name} does not answer /status: {c.tail_logs()}"
        time.sleep(0.05)


def test_ticks_follow_each_nodes_clock_rate(clocked: tuple[Cluster, LocalClocks]) -> None:
    c, clocks = clocked
    c.wait_leader()
    change(clocks, "n2", ClockOp("rate", 2.0))
    change(clocks, "n3", ClockOp("rate", 0.5))
    first = {n: sample(c, n) for n in c.initial}
    time.sleep(4.0)
    last = {n: sample(c, n) for n in c.initial}
    per_tick = 1000.0 / TICK_MS
    for name, rate in (("n1", 1.0), ("n2", 2.0), ("n3", 0.5)):
        (t0, s0), (t1, s1) = first[name], last[name]
        ticks = (s1["ticks"] - s0["ticks"]) / (t1 - t0) / per_tick
        wall = (s1["wall_clock"] - s0["wall_clock"]) / (t1 - t0)
        # a loaded machine may make a node miss a tick now and then, never tick ahead
        assert 0.75 * rate <= ticks <= 1.1 * rate, f"{name} at rate {rate}: {ticks:.2f}x the true tick rate"
        assert abs(wall - rate) < 0.05 * rate, f"{name} at rate {rate}: wall clock ran at {wall:.3f}x"


def test_clock_outlives_the_process_and_reset_makes_it_true(clocked: tuple[Cluster, LocalClocks]) -> None:
    c, clocks = clocked
    c.wait_leader()
    change(clocks, "n3", ClockOp("rate", 0.5))
    time.sleep(1.0)
    c.kill("n3")
    time.sleep(1.0)  # the machine's clock keeps drifting while the node is down
    c.start("n3")
    t, st = sample(c, "n3")
    state = clocks.state("n3")
    assert state is not None and state.rate == 0.5
    # 2 s of real time at rate 0.5 and more: the restarted node reads the drifted clock
    assert st["wall_clock"] - t == pytest.approx(state.offset_at(t), abs=0.05)
    assert st["wall_clock"] - t < -0.9
    for n in c.initial:
        change(clocks, n, ClockOp("reset"))
    for n in c.initial:
        t, st = sample(c, n)
        assert abs(st["wall_clock"] - t) < 0.05, f"{n}: clock {st['wall_clock'] - t:+.3f} s off after reset"
        state = clocks.state(n)
        assert state is not None and state.rate == 1.0 and abs(state.offset_at(t)) < 1e-3


def test_steps_of_minutes_either_way_hang_nothing(clocked: tuple[Cluster, LocalClocks]) -> None:
    c, clocks = clocked
    lead = c.wait_leader()
    follower = next(n for n in c.initial if n != lead)
    with c.client(lead) as cl:
        put_with_retry(cl, "k", 0)
        for i, (node, step) in enumerate([(follower, 300.0), (follower, -600.0), (lead, -300.0),
                                          (lead, 600.0)], 1):
            change(clocks, node, ClockOp("jump", step))
            put_with_retry(cl, "k", i, timeout=10.0)
        assert cl.get("k").value == 4
    for n in c.initial:
        sample(c, n)  # every node still answers


def test_strobing_clock_leaves_the_cluster_responsive(clocked: tuple[Cluster, LocalClocks]) -> None:
    """The leader's clock flips 0.5 s back and forth every 50-100 ms for 30 s while clients
    write through it and read through a follower."""
    c, clocks = clocked
    lead = c.wait_leader()
    follower = next(n for n in c.initial if n != lead)
    stop = threading.Event()
    results: list[tuple[float, str]] = []

    def load() -> None:
        i = 0
        with c.client(lead, timeout=3.0) as w, c.client(follower, timeout=3.0) as r:
            while not stop.is_set():
                i += 1
                for status in (w.put(f"s{i % 10}", i).status, r.get(f"s{i % 10}").status):
                    results.append((time.monotonic(), status))
                time.sleep(0.02)

    worker = threading.Thread(target=load)
    worker.start()
    rng = random.Random(16)
    flips = 0
    try:
        end = time.monotonic() + 30.0
        while time.monotonic() < end:
            clocks.append(lead, [ClockOp("jump", 0.5 if flips % 2 == 0 else -0.5)])
            flips += 1
            time.sleep(rng.uniform(0.05, 0.1))
    finally:
        stop.set()
        worker.join(10.0)
    state = clocks.state(lead)
    assert state is not None and state.applied >= flips * 0.9, "the agent fell behind the strobe"
    oks = [t for t, s in results if s == "ok"]
    assert len(oks) >= 0.9 * len(results) and len(results) > 200, f"{len(oks)}/{len(results)} ok"
    gaps = [b - a for a, b in zip(oks, oks[1:], strict=False)]
    assert max(gaps) < 3.0, f"no answer for {max(gaps):.1f} s during the strobe"
    change(clocks, lead, ClockOp("reset"))
    for n in c.initial:
        t, st = sample(c, n)
        assert abs(st["wall_clock"] - t) < 0.05
