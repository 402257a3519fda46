"""register: one compare-and-set register; read / write / cas (model "cas-register")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workloads.base import OpStream, Workload


def make(seed: int, opts: Mapping[str, Any]) -> OpStream:
    # No deletes: a single register is only ever written.
    weights = {f: float(opts.get(f, 0.0)) for f in ("read", "write", "cas")}
    return OpStream(seed=seed, keyed=False, keys=1, ops_per_key=1, weights=weights)


REGISTER = Workload(name="register", model="cas-register", make=make)
