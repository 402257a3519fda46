"""What this machine has: skips with a one-line reason for what it lacks, and process lookups."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
#: The reference corpora ship in the repository (tests/corpora, with their licenses).
CORPORA = Path(os.environ.get("FAULTLINE_CORPORA", REPO / "tests" / "corpora"))


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces / iptables)")


def require_binary(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None and not Path(name).exists():
            pytest.skip(f"needs {name} (install with scripts/setup.sh as root)")


def find_libfaketime() -> str | None:
    from harness.providers.clock import find_libfaketime as find

    return find()


def procs_naming(text: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains `text`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            pids.append(int(entry.name))
    return pids


def eventually(what: str, fn: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll `fn` every 0.2 s until it returns something truthy (returned); AssertionError
    naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.2)
