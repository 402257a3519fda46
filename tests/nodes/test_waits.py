"""The node's own timed waits (nodes/fdwait.py) and its steady clock (nodes/steadyclock.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from nodes import steadyclock
from nodes.fdwait import FdEvent, join_within, wait_done
from nodes.steadyclock import SteadyClock


def test_fd_event_times_out_then_wakes_every_waiter() -> None:
    ev = FdEvent()
    t0 = time.monotonic()
    assert ev.wait(0.05) is False
    assert time.monotonic() - t0 >= 0.045
    woke: list[bool] = []
    waiters = [threading.Thread(target=lambda: woke.append(ev.wait(10.0))) for _ in range(3)]
    for w in waiters:
        w.start()
    ev.set()
    for w in waiters:
        w.join(5.0)
    assert woke == [True, True, True] and ev.is_set() and ev.wait(0) is True
    ev.close()
    ev.set()  # after close: a no-op, not a write to a closed (or reused) descriptor
    assert ev.wait(1.0) is True


def test_wait_done_and_join_within() -> None:
    fut: Future[int] = Future()
    assert wait_done(fut, 0.05) is False
    threading.Timer(0.05, fut.set_result, args=(7,)).start()
    assert wait_done(fut, 5.0) is True and fut.result() == 7
    finished = FdEvent()
    release = threading.Event()

    def run() -> None:
        release.wait()
        finished.set()

    t = threading.Thread(target=run)
    t.start()
    assert join_within(t, finished, 0.05) is False and t.is_alive()
    release.set()
    assert join_within(t, finished, 5.0) is True and not t.is_alive()


def test_steady_clock_follows_steps_forward_never_back(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = iter([100.0, 100.5, 220.5, 100.0, 100.25, 99.0, 99.5])
    monkeypatch.setattr(steadyclock.time, "monotonic", lambda: next(raw))
    c = SteadyClock()  # 100.0
    assert c.now() == 100.5
    assert c.now() == 220.5  # a step forward of 120 s counts in full
    assert c.now() == 220.5  # a step back of 120.5 s counts as no time
    assert c.now() == 220.75  # and time runs on from there at its rate
    assert c.now() == 220.75
    assert c.now() == 221.25
