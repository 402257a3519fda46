"""nats-server 2.9's Raft debug lines as node events, one event stream per Raft group.

JetStream runs one Raft group for its metadata (`_meta_`) and one per replicated stream
(`S-R3F-<random>`; a KV bucket is the stream `KV_<bucket>`). With debug logging on (`-D`),
server/raft.go logs every line below prefixed `RAFT [<peer id> - <group>]`, where the peer id is
a hash of the server name, the same in every group. What each line means (read in v2.9.10):

    Sending out voteRequest {term:T ... candidate:ME reply:}
        ME became a candidate of term T (it increments its term first) and voted for itself.
    Received a voteRequest &{term:T ... candidate:C reply:R}
    Sending a voteResponse &{term:X peer:ME granted:G} -> "R"
        ME answered C's request R. X is ME's term *before* the request; after it ME's term is
        max(X, T). G=true is a vote for C in term T (NATS grants only when T >= X).
    Stepping down from candidate, detected higher term: T vs T
        a candidate saw a higher term T and took it.
    AppendEntry did not match A B with C D
        ME resets its term to C, the term of its last log entry (it may go *down*).
    Switching to leader | Switching to follower
        role changes; NATS does not log the term here. A leader's term is the term of its last
        voteRequest, unless an append entry reached it as a candidate since ("Received append
        entry in candidate state"), which may raise the term without logging it: such a
        leader line is counted as unattributed, never guessed.

Other lines used: "Starting nats-server" opens a new boot; "Node: <id>" and "Name: <name>"
map the peer id to a server name; "JetStream cluster bootstrapping" (no meta peer state on
disk) means a fresh store, i.e. a new incarnation whose boots count from 1 again; "Starting
stream monitor for '<account> > <stream>' [<group>]" names a stream's group.

Events per group and node: `role` (candidate, leader, follower; follower terms are the best
lower bound the lines give, exact after a term-bearing line) and `vote`. The logs show no
commit or apply index, no log entries and no durable hard state, so state machine safety,
apply order, leader completeness and durability cannot be judged for NATS; election safety,
one vote per term and term monotonicity can. Timestamps are read as UTC (the adapter runs
nats-server with TZ=UTC: 2.9 has no option to log UTC).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from checkers.result import UNKNOWN, CheckResult, merge_verdicts
from checkers.safety.check import check as check_group
from checkers.safety.violations import Event

META = "_meta_"

_LINE = re.compile(r"^\[\d+\] (\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\.\d+) \[([A-Z]+)\] (.*)$")
_RAFT = re.compile(r"^RAFT \[(\S+) - (\S+)\] (.*)$")
_SENT_REQ = re.compile(r"^Sending out voteRequest \{term:(\d+) .*candidate:(\S+) reply:")
_RECV_REQ = re.compile(r"^Received a voteRequest &\{term:(\d+) .*candidate:(\S+) reply:(\S*)\}$")
_SENT_RESP = re.compile(r'^Sending a voteResponse &\{term:(\d+) peer:(\S+) granted:(true|false)\} -> "(.*)"$')
_HIGHER = re.compile(r"^Stepping down from candidate, detected higher term: (\d+) vs (\d+)$")
_MISMATCH = re.compile(r"^AppendEntry did not match (\d+) (\d+) with (\d+) (\d+)$")
_NODE = re.compile(r"^\s+Node:\s+(\S+)$")
_NAME = re.compile(r"^\s+Name:\s+(\S+)$")
_MONITOR = re.compile(r"^Starting stream monitor for '(.+)' \[(\S+)\]$")
#: Lines after which a node's term may have risen without a line saying to what.
_SILENT_RAISE = (
    "Received append entry in candidate state",
    "Received append entry from another leader",
    "Term higher than ours and we are not a follower",
)


class NatsLogError(Exception):
    """A nats-server log that cannot be read (message names the file)."""


@dataclass
class _GroupState:
    """One node's view of one Raft group during one boot."""

    term: int = 0  # best lower bound of the current term (0: nothing seen this boot)
    exact: bool = False  # `term` is the node's term, not just a bound
    role: str = "follower"
    #: highest term of a role event so far (follower events never go below it)
    emitted: int = 0
    #: a boot event is due before this group's first event (the boot started from a fresh store)
    fresh: bool = False
    #: reply subject -> (term, candidate id) of vote requests awaiting their response line
    pending: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass
class NatsLogs:
    """Events per Raft group and node, and what could not be attributed."""

    groups: dict[str, dict[str, list[Event]]]
    #: group -> stream it replicates ("$G > KV_t"), where the logs name it
    streams: dict[str, str]
    #: peer id -> server name
    peers: dict[str, str]
    #: "Switching to leader" lines whose term the logs do not show, per group
    unattributed: dict[str, int]
    #: "AppendEntry did not match" lines that set a node's term below what it had, per group
    term_resets: dict[str, int] = field(default_factory=dict)


@dataclass
class _Reader:
    node: str
    boot: int = 0
    events: dict[str, list[Event]] = field(default_factory=dict)
    state: dict[str, _GroupState] = field(default_factory=dict)
    unattributed: dict[str, int] = field(default_factory=dict)
    term_resets: dict[str, int] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # peer id -> name, from this log
    streams: dict[str, str] = field(default_factory=dict)
    fresh: bool = False
    _node_id: str | None = None
    _name: str | None = None

    def line(self, ts: float, text: str, names: Mapping[str, str]) -> None:
        if text == "Starting nats-server":
            self.boot += 1
            self.state = {}
            self.fresh = False
            self._node_id = self._name = None
            return
        if text == "JetStream cluster bootstrapping":
            # No meta peer state on disk: a fresh store, so a new member with the same name
            # whose boots count from 1 again (its groups start at term 0 with no vote).
            self.boot, self.fresh = 1, True
            return
        if m := _NODE.match(text):
            self._node_id = m.group(1)
        elif m := _NAME.match(text):
            self._name = m.group(1)
        if self._node_id is not None and self._name is not None:
            self.ids[self._node_id] = self._name
        if m := _MONITOR.match(text):
            self.streams[m.group(2)] = m.group(1)
            return
        if m := _RAFT.match(text):
            self._raft(ts, m.group(2), m.group(3), names)

    def _raft(self, ts: float, group: str, msg: str, names: Mapping[str, str]) -> None:
        boot = max(self.boot, 1)  # a log whose start was cut off
        st = self.state.get(group)
        if st is None:
            st = self.state[group] = _GroupState(fresh=self.fresh)
        out = self.events.setdefault(group, [])

        def emit(kind: str, **fields: Any) -> None:
            if st.fresh:
                st.fresh = False
                out.append({"ts": ts, "node": self.node, "boot": boot, "type": "boot",
                            "term": 0, "vote": None, "commit": 0})
            out.append({"ts": ts, "node": self.node, "boot": boot, "type": kind, **fields})

        if m := _SENT_REQ.match(msg):
            st.term, st.exact, st.role = int(m.group(1)), True, "candidate"
            st.emitted = max(st.emitted, st.term)
            emit("role", role="candidate", term=st.term, lead=None)
            emit("vote", term=st.term, **{"for": self.node})
        elif m := _RECV_REQ.match(msg):
            st.pending[m.group(3)] = (int(m.group(1)), m.group(2))
        elif m := _SENT_RESP.match(msg):
            asked = st.pending.pop(m.group(4), None)
            if asked is None:
                return  # its request line was before the log's start
            before, (term, candidate) = int(m.group(1)), asked
            st.term, st.exact = max(before, term), True
            if m.group(3) == "true":
                emit("vote", term=term, **{"for": names.get(candidate, candidate)})
        elif m := _HIGHER.match(msg):
            st.term, st.exact = int(m.group(1)), True
        elif m := _MISMATCH.match(msg):
            # raft.go resets the term to its last entry's: counted, not flagged by itself; a
            # campaign or vote in the lower term that may follow is what the checks judge.
            if int(m.group(3)) < st.term:
                self.term_resets[group] = self.term_resets.get(group, 0) + 1
            st.term, st.exact = int(m.group(3)), True
        elif msg.startswith(_SILENT_RAISE):
            st.exact = False
        elif msg == "Switching to leader":
            if st.role != "candidate" or not st.exact:
                self.unattributed[group] = self.unattributed.get(group, 0) + 1
                st.role = "leader"
                return
            st.role = "leader"
            st.emitted = max(st.emitted, st.term)
            emit("role", role="leader", term=st.term, lead=self.node)
        elif msg == "Switching to follower":
            st.role = "follower"
            st.emitted = max(st.emitted, st.term)
            if st.emitted > 0:
                emit("role", role="follower", term=st.emitted, lead=None)


def read_nats_logs(paths_by_node: Mapping[str, Path | Sequence[Path]]) -> NatsLogs:
    """Events per Raft group from each node's nats-server log file(s), oldest file first."""
    lines_by_node = {node: _read_lines(node, paths) for node, paths in paths_by_node.items()}
    # Peer ids first (every log names its own server), so that votes name servers.
    peers: dict[str, str] = {}
    for node, lines in lines_by_node.items():
        scout = _Reader(node)
        for ts, text in lines:
            if not text.startswith("RAFT"):
                scout.line(ts, text, {})
        peers.update(scout.ids)
    groups: dict[str, dict[str, list[Event]]] = {}
    streams: dict[str, str] = {}
    unattributed: dict[str, int] = {}
    resets: dict[str, int] = {}
    for node, lines in lines_by_node.items():
        reader = _Reader(node)
        for ts, text in lines:
            reader.line(ts, text, peers)
        for group, events in reader.events.items():
            groups.setdefault(group, {})[node] = events
        streams.update(reader.streams)
        for group, count in reader.unattributed.items():
            unattributed[group] = unattributed.get(group, 0) + count
        for group, count in reader.term_resets.items():
            resets[group] = resets.get(group, 0) + count
    return NatsLogs(groups, streams, peers, unattributed, resets)


#: Substrings of the only lines the reader looks at (debug logs are mostly other lines).
_WANTED = ("RAFT [", "Starting nats-server", "Node:", "Name:", "bootstrapping",
           "Starting stream monitor")


def _read_lines(node: str, paths: Path | Sequence[Path]) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    for path in [paths] if isinstance(paths, Path) else list(paths):
        try:
            f = path.open(encoding="utf-8", errors="replace")
        except OSError as e:
            raise NatsLogError(f"{path}: cannot read the nats-server log of {node}: {e.strerror}") from e
        with f:
            for raw in f:
                if any(w in raw for w in _WANTED):
                    parsed = _split(raw.rstrip("\n"))
                    if parsed is not None:
                        out.append(parsed)
    return out


def _split(raw: str) -> tuple[float, str] | None:
    m = _LINE.match(raw)
    if m is None:
        return None
    try:
        when = datetime.strptime(m.group(1), "%Y/%m/%d %H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return when.timestamp(), m.group(3)


def group_label(group: str, streams: Mapping[str, str]) -> str:
    stream = streams.get(group)
    return f"{group} ({stream})" if stream else group


def check_nats_logs(paths_by_node: Mapping[str, Path | Sequence[Path]]) -> CheckResult:
    """Election safety, one vote per term and term monotonicity in every Raft group."""
    logs = read_nats_logs(paths_by_node)
    return judge(logs)


def judge(logs: NatsLogs) -> CheckResult:
    """The raft-safety verdict over all groups: each group is checked on its own (terms and
    votes of different groups are unrelated), and the verdicts merge."""
    verdicts = []
    violations: list[dict[str, Any]] = []
    per_group: dict[str, Any] = {}
    timeline: dict[str, Any] = {}
    for group in sorted(logs.groups, key=lambda g: (g != META, g)):
        res = check_group(logs.groups[group])
        label = group_label(group, logs.streams)
        verdicts.append(res.valid)
        for v in res.details.get("violations", []):
            violations.append({**v, "group": group, "message": f"[{label}] {v['message']}"})
        stats = dict(res.details.get("stats", {}))
        stats["unattributed_leader_lines"] = logs.unattributed.get(group, 0)
        stats["term_resets"] = logs.term_resets.get(group, 0)
        per_group[group] = {"valid": res.valid, "stream": logs.streams.get(group), "stats": stats}
        if group == META:
            timeline = res.details.get("timeline", {})
    valid = merge_verdicts(verdicts) if verdicts else UNKNOWN
    details: dict[str, Any] = {
        "violations": violations,
        "timeline": timeline,
        "groups": per_group,
        "stats": {
            "groups": len(per_group),
            "events": sum(g["stats"].get("events", 0) for g in per_group.values()),
            "terms_with_leader": sum(g["stats"].get("terms_with_leader", 0) for g in per_group.values()),
            "unattributed_leader_lines": sum(logs.unattributed.values()),
            "term_resets": sum(logs.term_resets.values()),
            "not_checked": "state machine safety, apply order, leader completeness, durability "
                           "(nats-server logs no commit or apply index and no entries)",
        },
    }
    if not verdicts:
        details["stats"]["message"] = "no Raft lines in the nats-server logs (debug logging off?)"
    return CheckResult("raft-safety", valid, details)
