"""Per-node timeline of roles and terms, for the report (results.json "timeline")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Segment:
    start: float
    end: float
    role: str
    term: int
    boot: int

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "role": self.role, "term": self.term,
                "boot": self.boot}


@dataclass
class Timeline:
    """Segments of one node: a new one at every change of role or term and at every boot."""

    segments: list[Segment] = field(default_factory=list)
    _open: Segment | None = None

    def enter(self, ts: float, role: str, term: int, boot: int) -> None:
        cur = self._open
        if cur is not None:
            if cur.role == role and cur.term == term and cur.boot == boot:
                return
            cur.end = max(cur.start, ts)
        seg = Segment(ts, ts, role, term, boot)
        self.segments.append(seg)
        self._open = seg

    def close(self, ts: float) -> None:
        """The node went down (or the events end) at ts."""
        if self._open is not None:
            self._open.end = max(self._open.start, ts)
            self._open = None

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.segments]
