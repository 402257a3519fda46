"""DB registry: `get(name)` returns the factory that creates a DB adapter by name.

Each adapter lives in `harness.db.<name>` and exposes `create(test: Mapping[str, Any]) -> DB`,
where `test` is the resolved config (see `harness.run.config`). Modules are imported lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from harness.protocols import DB, HarnessError

DBFactory = Callable[[Mapping[str, Any]], DB]

#: Known DB names; each maps to the module that defines its `create`.
NAMES: tuple[str, ...] = ("raftkv", "etcd")


def get(name: str) -> DBFactory:
    """The `create` function of DB `name`; HarnessError if unknown or unavailable."""
    if name not in NAMES:
        raise HarnessError(f"unknown db {name!r} (known: {', '.join(NAMES)})")
    try:
        module = importlib.import_module(f"harness.db.{name}")
    except ImportError as e:
        raise HarnessError(f"db {name!r} is not available: {e}") from e
    factory = getattr(module, "create", None)
    if not callable(factory):
        raise HarnessError(f"db module harness.db.{name} has no create(test)")
    return factory
