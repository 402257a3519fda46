"""Shared fixtures; the helpers behind them live in tests/support/."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.env import CORPORA, procs_naming


@pytest.fixture
def corpora() -> Path:
    if not (CORPORA / "expected.tsv").exists():
        pytest.fail(f"reference corpora not found at {CORPORA} (set FAULTLINE_CORPORA)")
    return CORPORA


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
