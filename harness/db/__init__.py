"""The systems under test, as plug-ins.

A config's `db:` names a plug-in: a name registered under the entry-point group
`faultline.dbs` (raftkv, etcd and nats are registered this way by faultline's own
pyproject.toml, like any installed package would), or a module on the Python path that exposes
`create(test: Mapping[str, Any]) -> DB`. `test` is the resolved config; `create` only reads it
(no I/O), so the config validation and `faultline analyze` create adapters too.
docs/adding-a-system.md is the recipe.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from harness.protocols import DB, HarnessError

DBFactory = Callable[[Mapping[str, Any]], DB]

ENTRY_POINT_GROUP = "faultline.dbs"


def registered() -> list[str]:
    """Names registered under `faultline.dbs` by installed packages."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def get(name: str) -> DBFactory:
    """The `create` function of plug-in `name`; HarnessError (one line) if there is none."""
    eps = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if eps:
        try:
            factory = eps[0].load()
        except Exception as e:  # a broken plug-in is its own, named error
            raise HarnessError(f"db {name!r}: entry point {eps[0].value} cannot be loaded: {type(e).__name__}: {e}") from e
        where = f"entry point {eps[0].value}"
    else:
        known = ", ".join(registered()) or "none registered"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and name.startswith(e.name):
                raise HarnessError(
                    f"unknown db {name!r} (registered: {known}; or a module on the Python path "
                    "exposing create(test))"
                ) from None
            raise HarnessError(f"db module {name!r} cannot be imported: {e}") from e
        except Exception as e:
            raise HarnessError(f"db module {name!r} cannot be imported: {type(e).__name__}: {e}") from e
        factory = getattr(module, "create", None)
        where = f"module {name}"
    if not callable(factory):
        raise HarnessError(f"db {name!r}: {where} has no create(test) function")
    return factory


def create(test: Mapping[str, Any]) -> DB:
    """The adapter of the test's `db`, checked against the `DB` protocol."""
    name = str(test.get("db", "raftkv"))
    return checked(name, get(name)(test))


def checked(name: str, db: object) -> DB:
    """`db` if it implements the DB protocol; else a one-line HarnessError naming what lacks."""
    missing = [m for m in ("name", *_DB_METHODS) if not hasattr(db, m)]
    if missing or not isinstance(db, DB):
        raise HarnessError(
            f"db {name!r}: {type(db).__name__} does not implement the DB protocol "
            f"(missing: {', '.join(missing) or '?'}; see docs/adding-a-system.md)"
        )
    return db


_DB_METHODS = ("setup", "wait_for_cluster", "start", "stop", "wipe", "client", "collect", "teardown", "checkers")
