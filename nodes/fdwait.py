"""Timed waits that stay right when the node's clock is faked: they poll a file descriptor.

The harness fakes a node's clocks with libfaketime (harness/providers/clock.py), monotonic
clock included, so that a node at rate 2 ticks twice as fast. libfaketime rewrites the relative
timeouts of poll/select/epoll and sleeps by the clock's rate, but not sem_clockwait, where every
timed wait on a Python lock ends (Event.wait(t), Condition.wait(t), Thread.join(t),
Future.result(t), Queue.get(timeout=t)): its absolute deadline, taken from the faked clock, is
decades ahead of the kernel's and the wait never times out (docs/benchmarks.md, "Faked
monotonic time"). So the node waits with a timeout only here, on poll(); untimed lock waits
are fine. This also holds without libfaketime.
"""

from __future__ import annotations

import os
import select
import threading
from concurrent.futures import Future
from typing import Any


class FdEvent:
    """A threading.Event that is set once and never cleared, whose wait polls an eventfd."""

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._flag = False
        self._closed = False
        # reentrant: set() may run in a signal handler that interrupted set() on this thread
        self._lock = threading.RLock()

    def set(self) -> None:
        with self._lock:
            if self._flag or self._closed:
                return
            self._flag = True
            os.eventfd_write(self._fd, 1)  # stays readable: every waiter, now and later, wakes

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if `timeout` seconds (of the node's clock) passed first."""
        if self._flag or self._closed:
            return self._flag
        p = select.poll()
        p.register(self._fd, select.POLLIN)
        p.poll(None if timeout is None else max(0.0, timeout) * 1000.0)
        return self._flag

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)


def wait_done(fut: Future[Any], timeout: float) -> bool:
    """Wait until fut is done, as fut.result(timeout) would but without a timed lock wait;
    False if it is not done within timeout."""
    if fut.done():
        return True
    done = FdEvent()
    try:
        fut.add_done_callback(lambda _f: done.set())
        done.wait(timeout)
    finally:
        done.close()
    return fut.done()


def join_within(thread: threading.Thread, finished: FdEvent, timeout: float) -> bool:
    """Join a thread that sets `finished` as it ends; False if it did not end in time."""
    if not finished.wait(timeout):
        return False
    thread.join()  # it is past its last line: an untimed join returns at once
    return True
