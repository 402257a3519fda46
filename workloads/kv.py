"""kv: many independent keys; read / write / cas / delete; checked per key (model "kv")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workloads.base import FS, OpStream, Workload


def make(seed: int, opts: Mapping[str, Any]) -> OpStream:
    return OpStream(
        seed=seed,
        keyed=True,
        keys=int(opts.get("keys", 4)),
        ops_per_key=int(opts.get("ops_per_key", 150)),
        weights={f: float(opts.get(f, 0.0)) for f in FS},
    )


KV = Workload(name="kv", model="kv", make=make)
