"""Shared test helpers: skips with a one-line reason for what this machine lacks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("FAULTLINE_CORPORA", REPO.parent / "shared" / "corpora"))


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
