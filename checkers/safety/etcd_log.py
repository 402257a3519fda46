"""etcd 3.4's raft log lines as node events, so that the same checker judges etcd.

etcd 3.4 logs either as JSON (zap: {"level", "ts", "caller", "msg", ...}) or as capnslog
text, where the raft package writes "raft2024/01/02 15:04:05 INFO: <msg>" (or, with a
capnslog package logger, "2024-01-02 15:04:05.000000 I | raft: <msg>"). The messages used:

    <id> became follower|pre-candidate|candidate|leader at term <n>
    raft.node: <id> elected leader <id> at term <n>
    raft.node: <id> changed leader from <id> to <id> at term <n>
    raft.node: <id> lost leader <id> at term <n>
    newRaft <id> [peers: [...], term: <n>, commit: <n>, applied: <n>, lastindex: <n>, lastterm: <n>]

Only role and boot events come out: election safety and monotonicity are what the logs can
show. Votes are not read: etcd logs a vote when granted in memory, before it is persisted,
so a vote lost in a crash was never sent and may legally be cast again.

Node ids are hex member ids. A node's own id is the subject of its own "became ..." lines,
so the mapping to node names is learned from the logs; `member_names` adds or overrides
entries. Capnslog timestamps have no zone: they are read as UTC.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checkers.safety.violations import Event

log = logging.getLogger(__name__)

_CAPNS_RAFT = re.compile(
    r"^raft(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) [A-Z]+: (.*)$")
_CAPNS_PKG = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) [A-Z] \| raft(?:\.node)?: (.*)$")
_BECAME = re.compile(r"^([0-9a-f]+) became (follower|pre-candidate|candidate|leader) at term (\d+)$")
_ELECTED = re.compile(r"^raft\.node: ([0-9a-f]+) elected leader ([0-9a-f]+) at term (\d+)$")
_CHANGED = re.compile(
    r"^raft\.node: ([0-9a-f]+) changed leader from ([0-9a-f]+) to ([0-9a-f]+) at term (\d+)$")
_LOST = re.compile(r"^raft\.node: ([0-9a-f]+) lost leader ([0-9a-f]+) at term (\d+)$")
_NEWRAFT = re.compile(r"^newRaft ([0-9a-f]+) \[peers: \[[^\]]*\], term: (\d+), commit: (\d+),")


class EtcdLogError(Exception):
    """An etcd log file that cannot be read (message names the file)."""


@dataclass
class _Line:
    """One recognised raft line, before member ids are mapped to node names."""

    ts: float
    kind: str  # role | boot
    self_id: str
    role: str = ""
    term: int = 0
    lead: str | None = None
    commit: int = 0


def read_etcd_logs(
    paths_by_node: Mapping[str, Path | Sequence[Path]],
    member_names: Mapping[str, str] | None = None,
) -> dict[str, list[Event]]:
    """{node: role and boot events} from each node's etcd log file(s), oldest file first."""
    parsed: dict[str, list[_Line]] = {}
    names: dict[str, str] = {}
    for node, paths in paths_by_node.items():
        lines: list[_Line] = []
        for path in [paths] if isinstance(paths, Path) else list(paths):
            lines.extend(_read_file(path))
        parsed[node] = lines
        for ln in lines:
            names.setdefault(ln.self_id, node)
    names.update({k.lower(): v for k, v in (member_names or {}).items()})
    return {node: _events(node, lines, names) for node, lines in parsed.items()}


def _read_file(path: Path) -> list[_Line]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise EtcdLogError(f"{path}: cannot read etcd log: {e.strerror}") from e
    out: list[_Line] = []
    for raw in text.splitlines():
        found = _parse_line(raw)
        if found is not None:
            out.append(found)
    return out


def _parse_line(raw: str) -> _Line | None:
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            obj = json.loads(raw)
        except ValueError:
            return None  # a torn last line of a killed member
        if not isinstance(obj, dict) or not isinstance(obj.get("msg"), str):
            return None
        ts = _zap_ts(obj.get("ts"))
        msg = obj["msg"]
    else:
        m = _CAPNS_RAFT.match(raw) or _CAPNS_PKG.match(raw)
        if m is None:
            return None
        ts = _capnslog_ts(m.group(1))
        msg = m.group(2)
    if ts is None:
        return None
    return _parse_msg(ts, msg.strip())


def _parse_msg(ts: float, msg: str) -> _Line | None:
    if m := _BECAME.match(msg):
        return _Line(ts, "role", m.group(1), role=m.group(2), term=int(m.group(3)))
    if m := _ELECTED.match(msg):
        return _Line(ts, "role", m.group(1), role="", term=int(m.group(3)), lead=m.group(2))
    if m := _CHANGED.match(msg):
        return _Line(ts, "role", m.group(1), role="", term=int(m.group(4)), lead=m.group(3))
    if m := _LOST.match(msg):
        return _Line(ts, "role", m.group(1), role="", term=int(m.group(3)), lead=None)
    if m := _NEWRAFT.match(msg):
        return _Line(ts, "boot", m.group(1), term=int(m.group(2)), commit=int(m.group(3)))
    return None


def _events(node: str, lines: list[_Line], names: Mapping[str, str]) -> list[Event]:
    out: list[Event] = []
    boot = 0
    role = "follower"
    # etcd logs "became follower at term n" just before "newRaft": a "became follower" line is
    # held until the next line says whether it opens a new boot.
    held: _Line | None = None
    for ln in lines:
        if ln.kind == "boot":
            # An empty recovered state is a fresh data directory (a member wiped and re-added):
            # its boots count from 1 again, which the checker reads as a new incarnation.
            boot = 1 if boot > 0 and ln.term == 0 and ln.commit == 0 else boot + 1
            out.append({"ts": held.ts if held else ln.ts, "node": node, "boot": boot,
                        "type": "boot", "term": ln.term, "vote": None, "commit": ln.commit})
            if held is not None:
                out.append(_role_event(node, boot, held.ts, "follower", held.term, None))
                held = None
            role = "follower"
            continue
        if held is not None:
            boot = max(boot, 1)  # a log starting after the member started (rotated, truncated)
            out.append(_role_event(node, boot, held.ts, "follower", held.term, None))
            held = None
        if ln.role == "follower":
            role, held = "follower", ln
            continue
        boot = max(boot, 1)
        if ln.role:
            role = ln.role
            lead = node if role == "leader" else None
        elif ln.lead is not None:
            lead = names.get(ln.lead)
            if lead is None:
                log.info("etcd log of %s: unknown member id %s; leader claim ignored", node, ln.lead)
                continue
            if lead == node:
                continue  # the leader's own "elected leader" line repeats "became leader"
            role = "follower"
        else:
            lead = None
        out.append(_role_event(node, boot, ln.ts, role, ln.term, lead))
    if held is not None:
        out.append(_role_event(node, max(boot, 1), held.ts, "follower", held.term, None))
    return out


def _role_event(node: str, boot: int, ts: float, role: str, term: int, lead: str | None) -> Event:
    return {"ts": ts, "node": node, "boot": boot, "type": "role", "role": role, "term": term,
            "lead": lead}


def _zap_ts(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def _capnslog_ts(text: str) -> float | None:
    text = text.replace("/", "-")
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
