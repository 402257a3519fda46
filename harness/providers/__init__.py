"""Provider registry: `get(name)` returns the factory that creates a provider by name.

Each provider lives in `harness.providers.<name>` and exposes
`create(test: Mapping[str, Any], work_dir: Path) -> Provider`, where `test` is the resolved
config (see `harness.run.config`) and `work_dir` the run's scratch directory on the controller.
Modules are imported lazily so that a provider's optional dependencies (paramiko, docker)
are only needed when it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.protocols import HarnessError, Provider

ProviderFactory = Callable[[Mapping[str, Any], Path], Provider]

#: Known provider names; each maps to the module that defines its `create`.
NAMES: tuple[str, ...] = ("local", "netns", "ssh", "docker")


def get(name: str) -> ProviderFactory:
    """The `create` function of provider `name`; HarnessError if unknown or unavailable."""
    if name not in NAMES:
        raise HarnessError(f"unknown provider {name!r} (known: {', '.join(NAMES)})")
    try:
        module = importlib.import_module(f"harness.providers.{name}")
    except ImportError as e:
        raise HarnessError(f"provider {name!r} is not available: {e}") from e
    factory = getattr(module, "create", None)
    if not callable(factory):
        raise HarnessError(f"provider module harness.providers.{name} has no create(test, work_dir)")
    return factory
