"""Loaded (via PYTHONPATH) into node processes that run under libfaketime on the local provider.

With FAKETIME_DONT_FAKE_MONOTONIC=1, libfaketime 0.9.10 fakes only the wall clock, as a real
clock fault (settimeofday, NTP jump) would; but its clock_nanosleep wrapper then rejects
Python's absolute monotonic deadlines with EINVAL, so every time.sleep() fails. Sleeping
through select() waits the same monotonic interval without that call.
"""

import select
import time

_real_sleep = time.sleep


def _sleep(secs: float) -> None:
    try:
        _real_sleep(secs)
    except OSError:
        if secs > 0:
            select.select([], [], [], secs)


time.sleep = _sleep  # type: ignore[assignment]  # same behaviour for the floats nodes pass
