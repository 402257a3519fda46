"""Reading raftkv node events (nodes/<node>/events.jsonl) from a run folder.

The only I/O of the safety checker. Lines are parsed in chunks (one json.loads per chunk is
markedly faster than one per line); a chunk that fails is re-read line by line to name the bad
line. A node killed mid-write leaves a torn last line: tolerated with a warning, also when the
node was restarted and its next boot's first line follows (or is glued to) the torn one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from checkers.safety.violations import Event

log = logging.getLogger(__name__)

# orjson parses event lines several times faster than the stdlib (reading, not checking, is
# most of the cost of a long run); the stdlib path gives the same events where it is missing.
_loads: Callable[[str | bytes | bytearray], Any]
try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is a dependency; the fallback keeps us pure
    _loads = json.loads

#: Lines per json.loads call: large enough to amortise the call, small enough to stream.
CHUNK_LINES = 4096


class EventLogError(Exception):
    """An events.jsonl file that cannot be read as node events (message names file and line)."""


def events_files(run_dir: Path) -> dict[str, Path]:
    """{node name: events.jsonl path} under run_dir/nodes, sorted by node name."""
    nodes_dir = run_dir / "nodes"
    if not nodes_dir.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(nodes_dir.glob("*/events.jsonl"))}


def read_events(run_dir: Path) -> dict[str, list[Event]]:
    """Every node's events, in file order: {node: [event, ...]}; {} when the run has none."""
    return {node: list(iter_node_events(path)) for node, path in events_files(run_dir).items()}


def iter_node_events(path: Path) -> Iterator[Event]:
    """Stream one node's events; raises EventLogError on a corrupt line that is not a torn tail."""
    try:
        f = path.open("rb")  # bytes: the parser takes them without a decode pass
    except OSError as e:
        raise EventLogError(f"{path}: cannot read node events: {e.strerror}") from e
    with f:
        lineno = 1  # line number of chunk[0]
        pending: list[bytes] = []
        while True:
            fresh = list(islice(f, CHUNK_LINES))
            at_eof = len(fresh) < CHUNK_LINES
            chunk = pending + fresh
            if not chunk:
                return
            try:
                parsed = _loads(b"[" + b",".join(chunk) + b"]")
            except ValueError:
                parsed = None
            if parsed is not None and (not parsed or set(map(type, parsed)) == {dict}):
                yield from parsed
                lineno += len(chunk)
                pending = []
            else:
                # Slow path names the bad line; a bad line ending the chunk is decided
                # together with the line after it, so it is carried into the next chunk.
                text = [line.decode("utf-8", errors="replace") for line in chunk]
                good, done = _parse_lines(path, text, lineno, at_eof)
                yield from good
                pending = chunk[done:]
                lineno += done
            if at_eof and not pending:
                return


def _parse_lines(path: Path, lines: list[str], first_line: int, at_eof: bool
                 ) -> tuple[list[Event], int]:
    """Parse lines one by one. Returns the events and how many lines were decided: a bad
    last line is left undecided (unless at_eof) to be judged with the line after it."""
    out: list[Event] = []
    for i, text in enumerate(lines):
        if not text.strip():
            continue
        last = i == len(lines) - 1
        if last and not at_eof and parse_event_text(path, first_line + i, text) is None:
            return out, i
        ev, warning = judge_line(path, first_line + i, text, None if last else lines[i + 1])
        if warning is not None:
            log.warning("%s", warning)
        if ev is not None:
            out.append(ev)
    return out, len(lines)


def parse_event_text(path: Path, lineno: int, text: str) -> Event | None:
    """The event of one line, or None when it is not JSON; EventLogError for other JSON."""
    try:
        ev = _loads(text)
    except ValueError:
        return None
    if type(ev) is not dict:
        raise EventLogError(f"{path}:{lineno}: not a JSON event object: {_clip(text)}")
    return ev


def judge_line(path: Path, lineno: int, text: str, next_text: str | None
               ) -> tuple[Event | None, str | None]:
    """One non-blank line, given the line after it (None: it is the file's last line).

    Returns (event or None, warning or None): a torn line of a killed node is skipped with a
    warning, or yields the boot event glued to it; any other bad line is an EventLogError.
    """
    ev = parse_event_text(path, lineno, text)
    if ev is not None:
        return ev, None
    glued = _glued_boot(text)
    if glued is not None:
        return glued, f"{path}:{lineno}: torn line of a killed boot, then the restart"
    if next_text is None:
        if not text.endswith("\n"):
            return None, f"{path}:{lineno}: ignoring torn last line (node killed mid-write)"
    elif text.startswith("{") and _is_boot(next_text):
        return None, f"{path}:{lineno}: ignoring torn line of a killed boot"
    raise EventLogError(f"{path}:{lineno}: not a JSON event object: {_clip(text)}")


def parse_event_bytes(line: bytes | bytearray) -> Event:
    """A line already known to hold one JSON object, parsed as the reader would (bytes that
    are not UTF-8 become U+FFFD, as in the reader's line-by-line path)."""
    try:
        ev = _loads(line)
    except ValueError:
        ev = _loads(line.decode("utf-8", errors="replace"))
    if type(ev) is not dict:
        raise EventLogError(f"not a JSON event object: {_clip(line.decode(errors='replace'))}")
    return ev


def _loads_event(text: str) -> Event | None:
    try:
        ev = _loads(text)
    except ValueError:
        return None
    return ev if type(ev) is dict else None


def _is_boot(text: str) -> bool:
    ev = _loads_event(text)
    return ev is not None and ev.get("type") == "boot"


def _glued_boot(text: str) -> Event | None:
    """The boot event a restarted node wrote right after its torn last line, if any."""
    pos = text.find("{", 1)
    while pos > 0:
        ev = _loads_event(text[pos:])
        if ev is not None and ev.get("type") == "boot":
            return ev
        pos = text.find("{", pos + 1)
    return None


def _clip(text: str, width: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= width else text[:width] + "..."
