"""Frame-aware proxy links: Raft messages of chosen types are dropped or held, everything else is
forwarded in order, and held messages reach the receiver at their release time. Link conditions
in message units lose, duplicate, delay and reorder whole frames, and count what they did."""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checkers.rundata import read_records
from harness.nemesis.core import Nemesis
from harness.nemesis.schedule import FaultEvent
from harness.net import msgfilter
from harness.net.linkcond import LinkConditions
from harness.net.msgfilter import (
    Action,
    FrameError,
    FrameSplitter,
    MessageRule,
    MessageType,
    drop,
    drop_commit_at_least,
    hold,
    is_hello,
    message_commit,
    parse_types,
    strip_frame,
    strip_new_term_entries,
)
from harness.net.proxy import ProxyHub
from harness.protocols import HarnessError
from harness.run.config import ConfigError, validate
from harness.run.history import HistoryWriter
from nodes.raft.codec import decode_message, encode_message
from nodes.raft.types import Entry, Message
from nodes.transport import HELLO_MAGIC, hello_frame

APP = MessageType.APP
TN = MessageType.TIMEOUT_NOW


def frame(t: MessageType, tag: int) -> bytes:
    """A transport frame whose payload starts with the message type, then a tag to tell it apart."""
    payload = bytes([t]) + tag.to_bytes(4, "big")
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


class Sink:
    """A peer port on loopback recording every frame it receives (type, tag, arrival time)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr: tuple[str, int] = self.sock.getsockname()[:2]
        self.got: list[tuple[int, int, float]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c: socket.socket) -> None:
        splitter = FrameSplitter()
        with c:
            while True:
                try:
                    data = c.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                for f in splitter.feed(data):
                    with self.lock:
                        self.got.append((f[8], int.from_bytes(f[9:13], "big"), time.monotonic()))

    def tags(self) -> list[int]:
        with self.lock:
            return [tag for _, tag, _ in self.got]

    def wait_for(self, n: int, timeout: float = 3.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.tags()) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.tags()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def hub() -> Iterator[ProxyHub]:
    h = ProxyHub()
    yield h
    h.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def reset_seen(s: socket.socket, timeout: float = 2.0) -> bool:
    """True once the proxy has closed this sender's connection (EOF or reset)."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_parse_types_rejects_unknown_names() -> None:
    assert parse_types(["timeout_now", "APP"]) == {TN, APP}
    with pytest.raises(ValueError, match="TIMEOUTNOW"):
        parse_types(["TIMEOUTNOW"])


@given(st.lists(st.integers(0, 18), min_size=1, max_size=20), st.data())
def test_splitter_reassembles_frames_at_any_cut(types: list[int], data: st.DataObject) -> None:
    frames = [frame(MessageType(t), i) for i, t in enumerate(types)]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    splitter = FrameSplitter()
    out: list[bytes] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += splitter.feed(stream[a:b])
    assert out == frames
    assert not splitter.buf


def test_splitter_refuses_oversized_frames() -> None:
    with pytest.raises(FrameError):
        FrameSplitter().feed(struct.pack(">II", (64 << 20) + 1, 0))


def test_rule_decides_by_type_only() -> None:
    rule = drop("TIMEOUT_NOW")
    assert rule.decide(frame(TN, 1)) is Action.DROP
    assert rule.decide(frame(APP, 1)) is Action.FORWARD


def raft_frame(t: MessageType, commit: int, term: int = 7, entries: int = 1, entry_term: int | None = None) -> bytes:
    """A transport frame holding a real codec-encoded Raft message."""
    et = term if entry_term is None else entry_term
    m = Message(t, to=2, from_=1, term=term, log_term=term, index=300, commit=commit,
                entries=tuple(Entry(et, 301 + i, data=b"x" * 200) for i in range(entries)))  # fmt: skip
    payload = encode_message(m)
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


@pytest.mark.parametrize("commit", [0, 1, 127, 128, 300, 16384, 2**40])
def test_message_commit_reads_the_codec_header(commit: int) -> None:
    f = raft_frame(APP, commit)
    assert message_commit(f[8:]) == commit


def test_message_commit_of_a_truncated_header_is_none() -> None:
    payload = raft_frame(APP, 2**40)[8:]
    assert message_commit(payload[:4]) is None
    assert message_commit(bytes([APP])) is None


@pytest.mark.parametrize(
    ("t", "commit", "expected"),
    [
        (APP, 9, Action.FORWARD),  # below the threshold: the receiver learns nothing new
        (APP, 10, Action.DROP),
        (APP, 11, Action.DROP),
        (MessageType.HEARTBEAT, 10, Action.DROP),
        (MessageType.HEARTBEAT, 3, Action.FORWARD),
        (MessageType.VOTE, 50, Action.FORWARD),  # not one of the rule's types
    ],
)
def test_commit_rule_drops_only_news_of_a_commit(t: MessageType, commit: int, expected: Action) -> None:
    rule = drop_commit_at_least(10, "APP", "HEARTBEAT")
    assert rule.decide(raft_frame(t, commit)) is expected


@pytest.mark.parametrize(
    ("entry_term", "entries", "expected"),
    [
        (7, 1, Action.STRIP),  # the leader's own entry (message term 7)
        (5, 1, Action.FORWARD),  # an older entry it forwards
        (5, 0, Action.FORWARD),  # an empty append (a probe, or news of the commit index)
    ],
)
def test_new_term_entry_rule(entry_term: int, entries: int, expected: Action) -> None:
    rule = strip_new_term_entries("APP")
    assert rule.decide(raft_frame(APP, 3, term=7, entries=entries, entry_term=entry_term)) is expected
    mixed = encode_message(Message(APP, to=2, from_=1, term=7, entries=(Entry(5, 1), Entry(7, 2))))
    assert rule.decide(struct.pack(">II", len(mixed), zlib.crc32(mixed)) + mixed) is Action.STRIP
    assert rule.decide(frame(APP, 1)) is Action.FORWARD  # undecodable: not this rule's business


def test_strip_keeps_the_log_position_and_older_entries() -> None:
    payload = encode_message(
        Message(APP, to=2, from_=1, term=7, log_term=5, index=10, commit=9,
                entries=(Entry(5, 11, data=b"a"), Entry(5, 12, data=b"b"), Entry(7, 13)))  # fmt: skip
    )
    f = struct.pack(">II", len(payload), zlib.crc32(payload)) + payload
    rule = strip_new_term_entries("APP")
    assert rule.decide(f) is Action.STRIP
    out = strip_frame(f)
    n, crc = struct.unpack(">II", out[:8])
    assert n == len(out) - 8 and crc == zlib.crc32(out[8:])
    m = decode_message(out[8:])
    assert (m.term, m.log_term, m.index, m.commit) == (7, 5, 10, 9)
    assert [(e.term, e.index, e.data) for e in m.entries] == [(5, 11, b"a"), (5, 12, b"b")]
    with pytest.raises(ValueError, match="only new-term entries"):
        MessageRule(frozenset({APP}), Action.STRIP)


def test_strip_on_a_live_link(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", strip_new_term_entries("APP"))
    with socket.create_connection(addr) as s:
        s.sendall(raft_frame(APP, 3, entries=2) + raft_frame(APP, 3, entries=1, entry_term=2))
        assert len(sink.wait_for(2)) == 2
    assert hub.stats()["n1->n2"]["msgs_stripped"] == 1
    assert [t for t, _, _ in sink.got] == [APP, APP]


def test_commit_rule_on_a_live_link(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", drop_commit_at_least(5, "APP", "HEARTBEAT"))
    with socket.create_connection(addr) as s:
        s.sendall(raft_frame(APP, 3) + raft_frame(APP, 5) + raft_frame(MessageType.HEARTBEAT, 4)
                  + raft_frame(MessageType.HEARTBEAT, 9))  # fmt: skip
        assert len(sink.wait_for(2)) == 2
    time.sleep(0.1)
    assert hub.stats()["n1->n2"]["msgs_dropped"] == 2
    assert [t for t, _, _ in sink.got] == [APP, MessageType.HEARTBEAT]


def test_drop_by_type_keeps_the_rest_in_order(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", drop("TIMEOUT_NOW"))
    with socket.create_connection(addr) as s:
        s.sendall(frame(APP, 1) + frame(TN, 2) + frame(APP, 3) + frame(TN, 4) + frame(APP, 5))
        assert sink.wait_for(3) == [1, 3, 5]
    time.sleep(0.1)
    assert sink.tags() == [1, 3, 5]
    assert hub.stats()["n1->n2"]["msgs_dropped"] == 2


def test_delay_holds_the_message_and_later_ones_on_its_connection(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", hold("TIMEOUT_NOW", delay=0.4))
    t0 = time.monotonic()
    with socket.create_connection(addr) as s:
        s.sendall(frame(APP, 1))
        assert sink.wait_for(1) == [1]
        s.sendall(frame(TN, 2) + frame(APP, 3))
        assert reset_seen(s), "the stalled connection must be reset so the sender reconnects"
    # the sender's new connection is not held back by the old one's stall
    with socket.create_connection(addr) as s2:
        s2.sendall(frame(APP, 4))
        assert sink.wait_for(2) == [1, 4]
    assert hub.held_frames("n1", "n2") == 2
    got = sink.wait_for(4)
    assert got == [1, 4, 2, 3]
    arrived = {tag: at for _, tag, at in sink.got}
    assert arrived[2] - t0 >= 0.4
    assert arrived[2] <= arrived[3]
    assert hub.held_frames("n1", "n2") == 0


def test_held_frames_arrive_after_their_streams_hello(hub: ProxyHub, sink: Sink) -> None:
    # a raftkv node takes frames on a connection only after a hello (nodes/transport.py): the
    # late connection that delivers held frames must begin with the one their stream began with
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", hold("TIMEOUT_NOW", delay=0.2))
    hello = hello_frame(b"token", 1, 2)
    assert is_hello(hello) and msgfilter.HELLO_MAGIC == HELLO_MAGIC and not is_hello(frame(APP, 1))
    with socket.create_connection(addr) as s:
        s.sendall(hello + frame(APP, 1) + frame(TN, 2))
        assert reset_seen(s)
    sink.wait_for(4)
    with sink.lock:
        kinds = [t for t, _, _ in sink.got]
    assert kinds == [hello[8], APP, hello[8], TN]


def test_hold_until_cleared_then_released(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", hold("TIMEOUT_NOW"))
    with socket.create_connection(addr) as s:
        s.sendall(frame(TN, 1) + frame(APP, 2))
        assert reset_seen(s)
    time.sleep(0.3)
    assert sink.tags() == []
    hub.set_rule("n1", "n2", None)  # heal: release what was held, forward everything again
    assert sink.wait_for(2) == [1, 2]
    with socket.create_connection(addr) as s:
        s.sendall(frame(TN, 3))
        assert sink.wait_for(3) == [1, 2, 3]


def test_release_delivers_now_and_keeps_the_rule(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", hold("TIMEOUT_NOW"))
    with socket.create_connection(addr) as s:
        s.sendall(frame(TN, 1))
        assert reset_seen(s)
    assert hub.release("n1", "n2") == 1
    assert sink.wait_for(1) == [1]
    with socket.create_connection(addr) as s:
        s.sendall(frame(TN, 2))
        assert reset_seen(s)
    assert hub.held_frames("n1", "n2") == 1


def test_setting_a_rule_resets_open_connections(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    with socket.create_connection(addr) as s:
        s.sendall(frame(APP, 1))
        assert sink.wait_for(1) == [1]
        hub.set_rule("n1", "n2", drop("APP"))
        assert reset_seen(s), "frame splitting must start at a connection's first byte"


def test_other_links_are_untouched(hub: ProxyHub, sink: Sink) -> None:
    hub.add_link("n1", "n2", sink.addr)
    addr3 = hub.add_link("n3", "n2", sink.addr)
    hub.set_rule("n1", "n2", drop("TIMEOUT_NOW", "APP"))
    with socket.create_connection(addr3) as s:
        s.sendall(frame(TN, 1) + frame(APP, 2))
        assert sink.wait_for(2) == [1, 2]


def test_unknown_link_is_an_error(hub: ProxyHub) -> None:
    with pytest.raises(KeyError, match="n1->n9"):
        hub.set_rule("n1", "n9", drop("APP"))


class StaleTransferDB:
    """A fake cluster whose leader n1 really sends TimeoutNow through the hub, and whose first
    removal is refused (a transfer in progress), as raftkv's leader does."""

    name = "fake"

    def __init__(self, hub: ProxyHub) -> None:
        self.hub = hub
        self.log: list[tuple[str, str, float]] = []
        self.refusals = 1

    def leader(self) -> str | None:
        return "n1"

    def transfer_leader(self, to: str) -> None:
        with socket.create_connection(self.hub.address("n1", to)) as s:
            s.sendall(frame(APP, 1) + frame(TN, 2))
            reset_seen(s)
        raise HarnessError(f"leadership did not move to {to}")

    def remove_member(self, node: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise HarnessError("leader transfer in progress")
        self.log.append(("remove", node, time.monotonic()))

    def start(self, node: str) -> None:
        self.log.append(("start", node, time.monotonic()))

    def add_member(self, node: str) -> None:
        self.log.append(("add", node, time.monotonic()))

    def members(self) -> list[str]:
        return ["n1", "n2", "n3"]

    def status(self, node: str, timeout: float = 1.0) -> dict[str, list[str]]:
        return {"voters": [n for n in ("n1", "n2", "n3") if n != node]}


class HubProvider:
    name = "local"
    supports_clock = False

    def __init__(self, hub: ProxyHub) -> None:
        self.hub = hub

    def message_hub(self) -> ProxyHub:
        return self.hub


def test_stale_transfer_delivers_timeout_now_after_the_removal(hub: ProxyHub, sink: Sink, tmp_path: Path) -> None:
    for to in ("n2", "n3"):
        hub.add_link("n1", to, sink.addr)
    db = StaleTransferDB(hub)
    hist = HistoryWriter(tmp_path / "h.jsonl")
    nem = Nemesis(db, HubProvider(hub), ["n1", "n2", "n3"], hist)  # type: ignore[arg-type]
    nem.start(FaultEvent(0.0, "stale-transfer", "stale-transfer", 0.1, 7))
    assert sink.wait_for(2) == [1, 2]
    nem.stop()
    hist.close()
    kinds = [k for k, _, _ in db.log]
    assert kinds == ["remove", "start", "add"]
    started = db.log[1][2]
    arrived = {tag: at for _, tag, at in sink.got}
    assert arrived[2] > started, "the TimeoutNow must reach the target only after its removal and restart"
    ops = read_records(hist.path)
    assert [o["f"] for o in ops] == ["start-stale-transfer", "stop-stale-transfer"]
    start = ops[0]["value"]
    assert start["from"] == "n1" and start["held"] == 1 and start["released"] == 1
    assert start["removed"] is True and start["knows_removed"] is True
    assert ops[1]["value"]["nodes"] == [start["to"]]
    assert nem.state.removed == set()


def test_stale_transfer_needs_raftkv_on_the_local_provider() -> None:
    base = {"db": "raftkv", "provider": "local", "nodes": 3, "nemesis": {"faults": ["stale-transfer"]}}
    assert validate(base)["nemesis"]["faults"] == ["stale-transfer"]
    for field, value in (("provider", "netns"), ("nodes", 2)):
        with pytest.raises(ConfigError, match="stale-transfer cannot be made real for db raftkv"):
            validate({**base, field: value})


def test_held_messages_released_into_a_cut_link_are_lost(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", hold("TIMEOUT_NOW"))
    with socket.create_connection(addr) as s:
        s.sendall(frame(TN, 1))
        assert reset_seen(s)
    hub.set_cut({("n1", "n2")})
    assert hub.release("n1", "n2") == 1
    time.sleep(0.3)
    assert sink.tags() == []
    assert hub.stats()["n1->n2"]["dropped"] > 0


def test_a_partial_frame_after_a_held_one_is_not_delivered(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", hold("TIMEOUT_NOW"))
    with socket.create_connection(addr) as s:
        s.sendall(frame(TN, 1) + frame(APP, 2)[:6])
        assert reset_seen(s)
    with socket.create_connection(addr) as s:
        s.sendall(frame(TN, 3))
        assert reset_seen(s)
    hub.set_rule("n1", "n2", None)
    assert sink.wait_for(2) == [1, 3], "a cut frame between two stalls would garble the stream"


# ---- link conditions on Raft messages ----


def messages(**kw: float) -> LinkConditions:
    return LinkConditions(unit="message", **kw)


def send_frames(addr: tuple[str, int], tags: range, gap: float = 0.0) -> dict[int, float]:
    """Send one APP frame per tag on one connection; returns each tag's send time."""
    sent = {}
    with socket.create_connection(addr) as s:
        for tag in tags:
            sent[tag] = time.monotonic()
            s.sendall(frame(APP, tag))
            if gap:
                time.sleep(gap)
        time.sleep(0.05)
    return sent


def settle(sink: Sink, quiet: float = 0.4, timeout: float = 5.0) -> list[int]:
    """The sink's tags once nothing has arrived for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        n = len(sink.tags())
        if n == last:
            break
        last = n
        time.sleep(quiet)
    return sink.tags()


def test_message_loss_drops_whole_frames_counted_in_order(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_conditions("f", {("n1", "n2"): messages(loss=0.3)}, seed=4)
    send_frames(addr, range(500))
    got = settle(sink)
    lost = hub.stats()["n1->n2"]["msgs_lost"]
    assert lost == 500 - len(got)
    assert 100 < lost < 200  # 30 % of 500, well inside the binomial spread
    assert got == sorted(got) and len(set(got)) == len(got)  # intact frames, order kept
    assert all(t == APP for t, _, _ in sink.got)


def test_message_duplication_delivers_copies_counted(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_conditions("f", {("n1", "n2"): messages(duplicate=0.3)}, seed=4)
    send_frames(addr, range(500))
    got = settle(sink)
    dups = hub.stats()["n1->n2"]["msgs_duplicated"]
    assert dups == len(got) - 500 and 100 < dups < 200
    assert set(got) == set(range(500)) and got == sorted(got)  # a copy follows its original
    assert max(got.count(t) for t in set(got)) == 2


def test_message_delay_is_measured_at_the_receiver(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    with socket.create_connection(addr) as s:  # an open connection is reset once, at the start
        s.sendall(frame(APP, 0))
        assert sink.wait_for(1) == [0]
        hub.set_conditions("f", {("n1", "n2"): messages(delay_ms=150, jitter_ms=30)}, seed=1)
        assert reset_seen(s)
    sent = send_frames(addr, range(1, 41), gap=0.01)
    got = sink.wait_for(41)
    assert got == list(range(41))  # jitter never reorders
    arrived = {tag: at for _, tag, at in sink.got}
    lags = [arrived[t] - sent[t] for t in sent]
    assert min(lags) >= 0.12 and sum(lags) / len(lags) < 0.15 + 0.15, lags
    assert hub.stats()["n1->n2"]["delayed"] == 40


def test_reorder_lets_later_messages_overtake(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_conditions("f", {("n1", "n2"): messages(delay_ms=80, jitter_ms=40, reorder=0.3)}, seed=9)
    send_frames(addr, range(200), gap=0.002)
    got = settle(sink)
    assert sorted(got) == list(range(200))  # nothing lost, nothing repeated
    assert got != sorted(got)
    overtaken = hub.stats()["n1->n2"]["overtaken"]
    assert overtaken == sum(1 for i, t in enumerate(got) if any(u > t for u in got[:i]))
    assert overtaken > 20


def test_messages_on_their_way_outlive_the_senders_connection(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_conditions("f", {("n1", "n2"): messages(delay_ms=300)})
    t0 = time.monotonic()
    with socket.create_connection(addr) as s:
        s.sendall(frame(APP, 1) + frame(APP, 2))
        time.sleep(0.05)
    assert hub.held_frames("n1", "n2") == 0  # in flight, not held by a rule
    assert sink.wait_for(2) == [1, 2]
    assert min(at for _, _, at in sink.got) - t0 >= 0.3


def test_clearing_delivers_what_is_delayed_at_once_and_stops_filtering(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_conditions("f", {("n1", "n2"): messages(delay_ms=5000)})
    with socket.create_connection(addr) as s:
        s.sendall(frame(APP, 1))
        time.sleep(0.1)
        assert sink.tags() == []
        assert hub.clear_conditions("f") == [("n1", "n2")]
        assert sink.wait_for(1, timeout=1.0) == [1]
        s.sendall(frame(APP, 2))  # the same connection goes on, unfiltered
        assert sink.wait_for(2, timeout=1.0) == [1, 2]
    assert hub.conditions() == {}


def test_conditions_and_a_rule_on_one_link(hub: ProxyHub, sink: Sink) -> None:
    addr = hub.add_link("n1", "n2", sink.addr)
    hub.set_rule("n1", "n2", drop("TIMEOUT_NOW"))
    with socket.create_connection(addr) as s:
        s.sendall(frame(APP, 1))
        assert sink.wait_for(1) == [1]
        hub.set_conditions("f", {("n1", "n2"): messages(delay_ms=100)})  # already split: no reset
        s.sendall(frame(TN, 2) + frame(APP, 3))
        assert sink.wait_for(2) == [1, 3]
        hub.set_rule("n1", "n2", None)  # the conditions still split the link
        s.sendall(frame(TN, 4))
        assert sink.wait_for(3) == [1, 3, 4]
