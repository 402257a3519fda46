"""The fault registry: every fault family the nemesis can make real, found by discovery.

Each module in `harness.nemesis.faults` defines one `FAULT = Fault(...)`: its name, its kinds
(and the config field that narrows them), what it needs from the DB and the provider (small
protocols of harness.protocols, checked with isinstance), and its start / stop / heal. The
config schema, the schedule, the CLI help and the nemesis all read this registry, so adding a
fault is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from harness.protocols import DB, ClockOperations, FaultSupport, Provider

if TYPE_CHECKING:
    import threading

    from harness.nemesis.state import ActiveFault, NemesisState

StartFn = Callable[["NemesisState", "ActiveFault", random.Random], dict[str, Any]]
StopFn = Callable[["NemesisState", "ActiveFault"], "dict[str, Any] | None"]
DuringFn = Callable[["NemesisState", "ActiveFault", "threading.Event"], None]
HealFn = Callable[["NemesisState", dict[str, Any], list[str]], None]
RefuseFn = Callable[[Mapping[str, Any], DB, Provider], "str | None"]


@dataclass(frozen=True)
class Fault:
    """One fault family. `start` makes it real and returns the value recorded in the history
    (`start-<name>`); `stop` undoes it (`stop-<name>`, None records nothing); `heal` undoes
    whatever of this family is still in effect at the end of the run, adding what it did to
    the `heal` op's value; `during`, if given, runs between start and stop (a strobing clock)."""

    name: str
    summary: str
    start: StartFn
    stop: StopFn
    heal: HealFn | None = None
    during: DuringFn | None = None
    #: Sub-kinds; the config field `kinds_field` (e.g. nemesis.partitions) narrows them.
    kinds: tuple[str, ...] = ()
    kinds_field: str | None = None
    #: Protocols the DB / provider must implement; a kind may need more (e.g. "leader").
    db_needs: tuple[type, ...] = ()
    provider_needs: tuple[type, ...] = ()
    kind_db_needs: Mapping[str, tuple[type, ...]] = field(default_factory=dict)
    min_nodes: int = 1
    max_nodes: int | None = None
    #: Over as soon as it started (a leader transfer): stop runs right after start.
    instantaneous: bool = False
    #: Plays its own partitions and message rules: never overlaps another fault (refused in a
    #: `mix` schedule).
    exclusive: bool = False
    #: Healing order at the end of a run: network first, members added back last.
    heal_order: int = 50
    #: Further refusals that depend on the whole test (a fault-specific reason, or None).
    refuse: RefuseFn | None = None

    @property
    def moves_clocks(self) -> bool:
        """It changes node clocks: the provider sets clock control up for it (libfaketime,
        probed), and DBs whose processes it cannot reach refuse it."""
        return ClockOperations in self.provider_needs

    def kinds_of(self, nemesis: Mapping[str, Any]) -> list[str]:
        """The kinds a config asks for (all when it does not narrow them)."""
        if self.kinds_field is None:
            return []
        return list(nemesis.get(self.kinds_field) or self.kinds)


@cache
def _discover() -> dict[str, Fault]:
    import harness.nemesis.faults as pkg

    found: dict[str, Fault] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        fault = getattr(module, "FAULT", None)
        if not isinstance(fault, Fault):
            raise TypeError(f"{module.__name__}: defines no FAULT = Fault(...)")
        if fault.name in found:
            raise TypeError(f"{module.__name__}: fault {fault.name!r} is defined twice")
        found[fault.name] = fault
    return found


def names() -> tuple[str, ...]:
    """Every fault family's name, in the order of their modules."""
    return tuple(_discover())


def get(name: str) -> Fault:
    try:
        return _discover()[name]
    except KeyError:
        raise KeyError(f"unknown fault {name!r} (known: {', '.join(names())})") from None


def families() -> list[Fault]:
    return list(_discover().values())


def _missing(obj: object, needs: Sequence[type]) -> list[str]:
    return [p.__name__ for p in needs if not isinstance(obj, p)]


def refusal(name: str, test: Mapping[str, Any], db: DB, provider: Provider) -> str | None:
    """Why fault `name` cannot be made real in this test (one line), or None."""
    fault = get(name)
    if isinstance(db, FaultSupport):  # the DB's own reason says most
        why = db.refuse_fault(name, provider)
        if why:
            return why
    n = len(test.get("nodes") or [])
    if n < fault.min_nodes:
        return f"needs at least {fault.min_nodes} nodes, got {n}"
    if fault.max_nodes is not None and n > fault.max_nodes:
        return f"needs at most {fault.max_nodes} nodes, got {n}"
    missing = _missing(db, fault.db_needs)
    if missing:
        return f"db {db.name} lacks {', '.join(missing)} (see docs/adding-a-system.md)"
    for kind in fault.kinds_of(test.get("nemesis") or {}):
        missing = _missing(db, fault.kind_db_needs.get(kind, ()))
        if missing:
            return f"kind {kind!r} needs {', '.join(missing)}, which db {db.name} lacks"
    missing = _missing(provider, fault.provider_needs)
    if missing:
        return f"the {provider.name} provider lacks {', '.join(missing)}"
    nemesis = test.get("nemesis") or {}
    if fault.exclusive and nemesis.get("schedule") == "mix":
        return "it plays its own partitions and cannot overlap other faults (use schedule interval or random)"
    if fault.refuse is not None:
        return fault.refuse(test, db, provider)
    return None


def moves_clocks(faults: Sequence[str]) -> bool:
    """Does a test asking for these faults need clock control (harness.nemesis.clocks)?"""
    return any(get(f).moves_clocks for f in faults if f in _discover())


def help_line() -> str:
    """The faults as the CLI lists them."""
    return ",".join(names())
