"""Shared test helpers: skips with a one-line reason for what this machine lacks."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
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
    for cand in (
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ):
        if Path(cand).exists():
            return cand
    return None


@pytest.fixture
def corpora() -> Path:
    if not (CORPORA / "expected.tsv").exists():
        pytest.fail(f"reference corpora not found at {CORPORA} (set FAULTLINE_CORPORA)")
    return CORPORA


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


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """A store folder for a test's runs; processes naming it (nodes whose data dirs live in
    it) are killed at the end, also when the test failed."""
    s = tmp_path / "store"
    yield s
    for pid in procs_naming(str(s)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
