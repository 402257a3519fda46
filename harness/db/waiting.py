"""Waiting for a cluster's leader, as every adapter with a leader lookup does."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.protocols import HarnessError


def wait_for_leader(
    lookup: Callable[[], str | None],
    timeout: float,
    what: str,
    poll: float = 0.2,
    check: Callable[[], None] | None = None,
) -> str:
    """Poll `lookup` until it names a leader (returned). `check`, called between polls, may
    raise to give up early (a node that exited); after `timeout` seconds, HarnessError
    "`what` within N s"."""
    deadline = time.monotonic() + timeout
    while True:
        lead = lookup()
        if lead is not None:
            return lead
        if time.monotonic() > deadline:
            raise HarnessError(f"{what} within {timeout:g}s")
        if check is not None:
            check()
        time.sleep(poll)
