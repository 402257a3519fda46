"""A stored run as the checkers see it: its folder, its resolved config, and its history read
once, on demand.

Checkers receive a `StoredRun` instead of a history already in memory, so a checker that reads
the files its own way (node events, system logs, a columnar history reader) does not pay for
the others, and a run whose history nobody needs as dicts is never held as dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checkers.history import Record, read_jsonl


@dataclass
class StoredRun:
    """One run folder: `test.yaml` already parsed into `test`; `history.jsonl` read lazily."""

    dir: Path
    test: Mapping[str, Any] = field(default_factory=dict)
    _history: list[Record] | None = field(default=None, repr=False)

    @property
    def history_path(self) -> Path:
        return self.dir / "history.jsonl"

    @property
    def nodes_dir(self) -> Path:
        """`nodes/<node>/`: each node's collected logs and events."""
        return self.dir / "nodes"

    def history(self) -> list[Record]:
        """history.jsonl's records (a torn last line skipped; any other bad line is a
        HistoryError naming file and line); read once, shared by every checker."""
        if self._history is None:
            self._history = read_jsonl(self.history_path) if self.history_path.exists() else []
        return self._history

    @classmethod
    def of_records(cls, records: list[Record], dir: Path, test: Mapping[str, Any] | None = None) -> StoredRun:
        """A run whose history is already in memory (tests, `faultline check`)."""
        return cls(dir=dir, test=dict(test or {}), _history=records)
