"""The one process-wide random source for randomized election timeouts.

Kept global on purpose (the one allowed piece of global mutable state): etcd uses a single
locked source, and tests make a whole cluster deterministic with one `seed(n)` call.
"""

from __future__ import annotations

import random

_source = random.Random()


def seed(n: int) -> None:
    """Re-seed the shared source (tests and simulations)."""
    _source.seed(n)


def intn(n: int) -> int:
    """A uniform int in [0, n); n must be positive."""
    if n <= 0:
        raise ValueError(f"rand.intn: n must be positive, got {n}")
    return _source.randrange(n)
