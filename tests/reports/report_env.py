"""Import before `reports` / `checkers`: make those names mean the packages, not test folders.

pytest puts tests/ on sys.path (for tests/conftest.py), where tests/reports/ and
tests/checkers/ would otherwise be imported as namespace packages shadowing the real ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parents[2])
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
for _pkg in ("reports", "checkers"):
    _mod = sys.modules.get(_pkg)
    if _mod is not None and getattr(_mod, "__file__", None) is None:
        # a namespace package made from a test folder earlier in this session: drop it
        for _name in [m for m in sys.modules if m == _pkg or m.startswith(_pkg + ".")]:
            del sys.modules[_name]
