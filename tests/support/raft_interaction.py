"""Transcript tests of the Raft core: commands from tests/raft/testdata/*.txt drive the
deterministic in-memory network (tests/support/raft_network.py) step by step, and everything
that happens is printed as text: each Ready a node hands to its application, each message
delivered, and (with `log-level`) the core's own log lines.

Commands (node ids are positional; counts and options are key=value):
    log-level none|error|warning|info|debug
    add-nodes N [voters=(1,2,3)] [pre-vote=true] [check-quorum=true] [election-tick=10]
              [heartbeat-tick=1] [read-only=safe|lease] [step-down-on-removal=true]
              [bugs=(name,...)]          new nodes get the next ids; with voters= they are
                                         bootstrapped with that membership, else start empty
    campaign ID
    tick ID... [count=1]                 Raft ticks
    tick-election ID...                  ticks until the node's election clock fires: its
                                         randomized timeout (the plain one for a leader)
    tick-heartbeat ID...                 one heartbeat interval
    tick-quiesced ID... [count=1]        quiesced ticks: clocks only
    propose ID DATA
    propose-conf-change ID CHANGE        CHANGE: vN (add voter), lN (add learner), rN (remove)
    transfer-leadership from=ID to=ID
    read-index ID CTX
    process-ready ID...
    deliver-msgs ID... [type=MsgApp] [drop=(ID,...)]   deliver (or drop) messages in flight
    stabilize [ID...]                    Readys and deliveries until nothing is left to do
    raft-state                           role, term and leader of every node
    status ID                            the leader's view of its followers' progress
    raft-log ID
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nodes.raft import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    RaftError,
    ReadOnlyOption,
    Ready,
    StateType,
    codec,
)
from tests.support.datadriven import Case
from tests.support.raft_network import Network, SimNode

LEVELS = {"none": logging.CRITICAL + 1, "error": logging.ERROR, "warning": logging.WARNING,
          "info": logging.INFO, "debug": logging.DEBUG}
_CHANGE_KINDS = {"v": ConfChangeType.ADD_NODE, "l": ConfChangeType.ADD_LEARNER_NODE,
                 "r": ConfChangeType.REMOVE_NODE}
_CHANGE_LETTERS = {**{k: v for v, k in _CHANGE_KINDS.items()}, ConfChangeType.UPDATE_NODE: "u"}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def msg_type_name(t: MessageType) -> str:
    return "Msg" + _camel(t.name)


_MSG_TYPES = {msg_type_name(t): t for t in MessageType}


def state_name(s: StateType) -> str:
    return "State" + _camel(s.name)


def describe_conf_state(cs: ConfState) -> str:
    text = "Voters:(" + " ".join(map(str, cs.voters)) + ")"
    if cs.learners:
        text += " Learners:(" + " ".join(map(str, cs.learners)) + ")"
    return text


def _text(b: bytes) -> str:
    return '"' + b.decode("utf-8", "backslashreplace") + '"'


def describe_entry(e: Entry) -> str:
    if e.type == EntryType.CONF_CHANGE:
        cc = codec.decode_conf_change(e.data)
        return f"{e.term}/{e.index} EntryConfChange {_CHANGE_LETTERS[cc.type]}{cc.node_id}"
    return f"{e.term}/{e.index} EntryNormal {_text(e.data)}"


def describe_message(m: Message) -> str:
    text = f"{m.from_}->{m.to} {msg_type_name(m.type)} Term:{m.term} Log:{m.log_term}/{m.index}"
    if m.commit:
        text += f" Commit:{m.commit}"
    if m.reject:
        text += " Rejected"
        if m.type == MessageType.APP_RESP:
            text += f" (Hint: {m.reject_hint})"
    if m.context:
        text += f" Context:{_text(m.context)}"
    if m.entries:
        text += " Entries:[" + ", ".join(describe_entry(e) for e in m.entries) + "]"
    if m.snapshot is not None and not m.snapshot.is_empty():
        md = m.snapshot.metadata
        text += f" Snapshot: Index:{md.index} Term:{md.term} {describe_conf_state(md.conf_state)}"
    return text


class _Collect(logging.Handler):
    def __init__(self, sink: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink(f"{record.levelname} {record.getMessage()}")


class InteractionEnv:
    """One transcript's cluster and its output buffer. Use as a context manager: it attaches
    a log handler to the core's logger for its lifetime."""

    def __init__(self) -> None:
        self.net = Network([], bootstrap=False)
        self.net.on_ready = self._print_ready
        self.lines: list[str] = []
        self.indent = 0
        self._logger = logging.getLogger("nodes.raft")
        self._handler = _Collect(self._print)
        self._handler.setLevel(LEVELS["none"])
        self._saved_level = self._logger.level

    def __enter__(self) -> InteractionEnv:
        self._logger.addHandler(self._handler)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._saved_level)

    # ---------------------------------------------------------------- output
    def _print(self, line: str) -> None:
        self.lines.append("  " * self.indent + line)

    @contextmanager
    def _indented(self) -> Iterator[None]:
        self.indent += 1
        try:
            yield
        finally:
            self.indent -= 1

    def _print_ready(self, n: SimNode, rd: Ready) -> None:
        p = self._print
        p(f"Ready MustSync={str(rd.must_sync).lower()}:")
        if rd.soft_state is not None:
            p(f"Lead:{rd.soft_state.lead} State:{state_name(rd.soft_state.raft_state)}")
        if not rd.hard_state.is_empty():
            hs = rd.hard_state
            p(f"HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
        if rd.entries:
            p("Entries:")
            for e in rd.entries:
                p(describe_entry(e))
        if not rd.snapshot.is_empty():
            md = rd.snapshot.metadata
            p(f"Snapshot Index:{md.index} Term:{md.term} {describe_conf_state(md.conf_state)}")
        if rd.committed_entries:
            p("CommittedEntries:")
            for e in rd.committed_entries:
                p(describe_entry(e))
        if rd.messages:
            p("Messages:")
            for m in rd.messages:
                p(describe_message(m))
        if rd.read_states:
            p("ReadStates:")
            for rs in rd.read_states:
                p(f"Index:{rs.index} Ctx:{_text(rs.request_ctx)}")

    # ---------------------------------------------------------------- commands
    def handle(self, case: Case) -> str:
        self.lines = []
        self.indent = 0
        fn = getattr(self, "cmd_" + case.cmd.replace("-", "_"), None)
        if fn is None:
            raise case.fail("unknown command")
        fn(case)
        return "\n".join(self.lines)

    def _node(self, case: Case, word: str) -> SimNode:
        try:
            return self.net.nodes[int(word)]
        except (ValueError, KeyError):
            raise case.fail(f"no node {word!r}") from None

    def _nodes(self, case: Case, default_all: bool = False) -> list[SimNode]:
        words = case.positional()
        if not words:
            if default_all:
                return list(self.net.nodes.values())
            raise case.fail("needs at least one node id")
        return [self._node(case, w) for w in words]

    def _one_node(self, case: Case) -> tuple[SimNode, list[str]]:
        words = case.positional()
        if not words:
            raise case.fail("needs a node id")
        return self._node(case, words[0]), words[1:]

    def cmd_log_level(self, case: Case) -> None:
        words = case.positional()
        if len(words) != 1 or words[0] not in LEVELS:
            raise case.fail(f"wants one of {', '.join(LEVELS)}")
        self._handler.setLevel(LEVELS[words[0]])

    def cmd_add_nodes(self, case: Case) -> None:
        words = case.positional()
        if len(words) != 1 or not words[0].isdigit():
            raise case.fail("wants the number of nodes to add")
        voters = [int(v) for v in case.get_list("voters") or []]
        read_only = case.get("read-only", "safe")
        if read_only not in ("safe", "lease"):
            raise case.fail(f"read-only= wants safe or lease, got {read_only!r}")
        cfg: dict[str, Any] = {
            "pre_vote": case.get_bool("pre-vote"),
            "check_quorum": case.get_bool("check-quorum"),
            "election_tick": case.get_int("election-tick", 10),
            "heartbeat_tick": case.get_int("heartbeat-tick", 1),
            "step_down_on_removal": case.get_bool("step-down-on-removal"),
            "read_only_option": (ReadOnlyOption.LEASE_BASED if read_only == "lease"
                                 else ReadOnlyOption.SAFE),
            "bugs": frozenset(case.get_list("bugs") or []),
        }
        first = len(self.net.nodes) + 1
        for node_id in range(first, first + int(words[0])):
            # The bootstrap Ready (the initial conf changes) is handled quietly, as etcd's
            # add-nodes writes the initial state straight to storage.
            self.net.on_ready = None
            try:
                n = self.net.add_node(node_id, bootstrap_voters=voters or None, **cfg)
            finally:
                self.net.on_ready = self._print_ready
            r = n.raft
            self._print(f"{node_id}: {state_name(r.state)} Term:{r.term} Commit:{n.commit} "
                        f"{describe_conf_state(r.tracker.conf_state())}")

    def cmd_campaign(self, case: Case) -> None:
        n, _ = self._one_node(case)
        n.rn.campaign()

    def _tick(self, nodes: list[SimNode], count: Callable[[SimNode], int],
              quiesced: bool = False) -> None:
        for n in nodes:
            for _ in range(count(n)):
                if quiesced:
                    n.rn.tick_quiesced()
                else:
                    n.rn.tick()

    def cmd_tick(self, case: Case) -> None:
        k = case.get_int("count", 1)
        self._tick(self._nodes(case), lambda n: k)

    def cmd_tick_quiesced(self, case: Case) -> None:
        k = case.get_int("count", 1)
        self._tick(self._nodes(case), lambda n: k, quiesced=True)

    def cmd_tick_election(self, case: Case) -> None:
        def until_timeout(n: SimNode) -> int:
            r = n.raft
            timeout = (r.election_timeout if r.state == StateType.LEADER
                       else r.randomized_election_timeout)
            return max(1, timeout - r.election_elapsed)

        self._tick(self._nodes(case), until_timeout)

    def cmd_tick_heartbeat(self, case: Case) -> None:
        self._tick(self._nodes(case), lambda n: int(n.raft.heartbeat_timeout))

    def _try(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except RaftError as e:
            self._print(f"{type(e).__name__}: {e}")

    def cmd_propose(self, case: Case) -> None:
        n, rest = self._one_node(case)
        if len(rest) != 1:
            raise case.fail("wants a node id and the data")
        self._try(lambda: n.rn.propose(rest[0].encode()))

    def cmd_propose_conf_change(self, case: Case) -> None:
        n, rest = self._one_node(case)
        if len(rest) != 1 or rest[0][:1] not in _CHANGE_KINDS or not rest[0][1:].isdigit():
            raise case.fail("wants a node id and a change: vN, lN or rN")
        cc = ConfChange(_CHANGE_KINDS[rest[0][0]], int(rest[0][1:]))
        self._try(lambda: n.rn.propose_conf_change(cc))

    def cmd_transfer_leadership(self, case: Case) -> None:
        src, dst = case.get("from"), case.get("to")
        if src is None or dst is None:
            raise case.fail("wants from=ID to=ID")
        self._try(lambda: self._node(case, src).rn.transfer_leader(int(dst)))

    def cmd_read_index(self, case: Case) -> None:
        n, rest = self._one_node(case)
        if len(rest) != 1:
            raise case.fail("wants a node id and a request context")
        self._try(lambda: n.rn.read_index(rest[0].encode()))

    def process_ready(self, n: SimNode) -> None:
        before = n.conf_state
        self.net.process_ready(n)
        if n.conf_state != before:
            self._print(f"applied: {describe_conf_state(n.conf_state)}")

    def cmd_process_ready(self, case: Case) -> None:
        for n in self._nodes(case):
            self.process_ready(n)

    def deliver(self, to: int, typ: MessageType | None = None, drop: bool = False) -> int:
        """Deliver (or drop) the messages in flight to `to`, in the order they were sent."""
        mine = [m for m in self.net.in_flight if m.to == to and (typ is None or m.type == typ)]
        taken = {id(m) for m in mine}
        self.net.in_flight = [m for m in self.net.in_flight if id(m) not in taken]
        for m in mine:
            if drop:
                self._print("dropped: " + describe_message(m))
                self.net.lose(m)
                continue
            self._print(describe_message(m))
            dst = self.net.nodes.get(m.to)
            if dst is None or not dst.up:
                self._print(f"(node {m.to} is down: lost)")
                self.net.lose(m)
                continue
            self._try(lambda: dst.rn.step(m))  # noqa: B023 - called at once
            if m.type == MessageType.SNAP and self.net.nodes[m.from_].up:
                self.net.nodes[m.from_].rn.report_snapshot(m.to, True)
        return len(mine)

    def cmd_deliver_msgs(self, case: Case) -> None:
        typ = None
        if (t := case.get("type")) is not None:
            if t not in _MSG_TYPES:
                raise case.fail(f"unknown message type {t!r}")
            typ = _MSG_TYPES[t]
        handled = 0
        drops = case.get_list("drop") or []
        for n in self._nodes(case, default_all=True) if case.positional() or not drops else []:
            handled += self.deliver(n.id, typ)
        for word in drops:
            handled += self.deliver(self._node(case, word).id, typ, drop=True)
        if not handled:
            self._print("no messages")

    def cmd_stabilize(self, case: Case) -> None:
        nodes = self._nodes(case, default_all=True)
        for _ in range(1000):
            done = True
            for n in nodes:
                if n.up and n.rn.has_ready():
                    self._print(f"> {n.id} handling Ready")
                    with self._indented():
                        self.process_ready(n)
                    done = False
            for n in nodes:
                if any(m.to == n.id for m in self.net.in_flight):
                    self._print(f"> {n.id} receiving messages")
                    with self._indented():
                        self.deliver(n.id)
                    done = False
            if done:
                return
        raise case.fail("did not stabilize in 1000 rounds")

    def cmd_raft_state(self, case: Case) -> None:
        for i, n in self.net.nodes.items():
            r = n.raft
            cs = r.tracker.conf_state()
            member = ("Voter" if i in cs.voters else "Learner" if i in cs.learners
                      else "Non-member")
            down = "" if n.up else " (down)"
            self._print(f"{i}: {state_name(r.state)} ({member}) Term:{r.term} Lead:{r.lead}"
                        f"{down}")

    def cmd_status(self, case: Case) -> None:
        n, _ = self._one_node(case)
        st = n.rn.status()
        if not st.progress:
            lead = st.soft_state.lead
            self._print(f"{n.id} is {state_name(st.soft_state.raft_state)} "
                        f"(lead {lead if lead != NONE else 'none'}): no progress to show")
            return
        for pid, pr in sorted(st.progress.items()):
            extra = "".join((
                " learner" if pid in st.conf_state.learners else "",
                " paused" if pr.paused else "",
                f" inflight={pr.inflight_count}" if pr.inflight_count else "",
                " active" if pr.recent_active else "",
            ))
            self._print(f"{pid}: State{_camel(pr.state.name)} match={pr.match} next={pr.next}"
                        f"{extra}")

    def cmd_raft_log(self, case: Case) -> None:
        n, _ = self._one_node(case)
        ents = n.log_entries()
        if not ents:
            self._print("log is empty")
        for e in ents:
            self._print(describe_entry(e))
