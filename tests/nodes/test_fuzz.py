"""Generated garbage at every input surface of a running node (issue 20): the client protocol,
the admin API and the peer port. Each must answer with a clear error (or nothing, where the
protocol has no answer), the process must stay alive and leader, and nothing it recorded may
be lost: the acknowledged writes made before the fuzzing are still there, and its event log
still parses.

Every fuzz loop is bounded in examples and in wall-clock time (FUZZ_SECONDS per surface).
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodes.raft import Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata, codec
from nodes.transport import hello_frame
from tests.support.raftkv_cluster import Cluster

TOKEN = "fuzz-token-7f3a9c1e5b2d4f60"
FUZZ_SECONDS = 6.0
RECORDED = {f"rec/{i}": i for i in range(10)}
FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", params=[TOKEN, None], ids=["token", "no-token"])
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("fuzz"), size=1, spare=0, token=request.param)
    try:
        c.start("n1")
        c.wait_leader(["n1"])
        with c.client("n1") as kc:
            for k, v in RECORDED.items():
                assert kc.put(k, v).status == "ok"
        yield c
    finally:
        c.close()


def _intact(c: Cluster, term: int | None = None) -> None:
    """Alive, still leader (of the same term, if given), acknowledged writes all there."""
    p = c.members["n1"].proc
    assert p is not None and p.poll() is None, c.tail_logs()
    st_ = c.admin("n1").status()
    assert st_["role"] == "leader" and st_["voters"] == ["n1"]
    if term is not None:
        assert st_["term"] == term
    with c.client("n1") as kc:
        for k, v in RECORDED.items():
            assert kc.get(k).value == v
        assert kc.put("fuzz/after", 1).status == "ok"
    events = (c.members["n1"].data_dir / "events.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in events)


class Budget:
    """Examples run until FUZZ_SECONDS have passed; the rest pass untried. Once one failed,
    every example runs, so that Hypothesis can replay and shrink the failure."""

    def __init__(self) -> None:
        self.stop = time.monotonic() + FUZZ_SECONDS
        self.tried = 0
        self.failed = False

    def run(self, fn: Callable[[], None]) -> None:
        if time.monotonic() >= self.stop and not self.failed:
            return
        self.tried += 1
        try:
            fn()
        except BaseException:
            self.failed = True
            raise


def _strict(line: bytes) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"reply is not JSON: {name}")

    return json.loads(line, parse_constant=refuse)


# ---- the client protocol ----

FIELDS = ["op", "key", "value", "expected", "new", "read", "id"]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4), max_leaves=12)
keys = st.text(max_size=12).filter(lambda k: not k.startswith("rec/"))
requests = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["get", "put", "cas", "delete", "nope", ""]) | json_values,
        "key": keys | json_values,
        "value": json_values,
        "expected": json_values,
        "new": json_values,
        "read": st.sampled_from(["linearizable", "lease", "serializable", "psychic"]) | json_values,
        "id": json_values,
    },
)
SPECIAL_LINES = {  # by name: a failing example's report stays readable
    "nested": b"[" * 50_000,
    "nan-id": b'{"op": "get", "key": "k", "id": NaN}',
    "huge-float-id": b'{"op": "get", "key": "k", "id": 1e999}',
    "infinity": b'{"op": "put", "key": "k", "value": -Infinity}',
    "long-int": b'{"op": "put", "key": "k", "value": ' + b"9" * 5000 + b"}",
    "not-utf8": b"\xff\xfe\x00garbage",
    "lone-surrogate": b'{"op": "get", "key": "\\ud800"}',
    "over-1MiB": b'{"op": "put", "key": "big", "value": "' + b"x" * ((1 << 20) + 10) + b'"}',
}


def _line(obj: Any) -> bytes:
    return json.dumps(obj).encode()


client_lines = st.one_of(
    requests.map(_line),
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")),
    st.sampled_from(sorted(SPECIAL_LINES)).map(SPECIAL_LINES.__getitem__),
    st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"op"', b":", b",", b'"get"', b"NaN", b"1e400", b"null"]), max_size=30).map(b"".join),
)


def test_client_protocol_fuzz(node: Cluster) -> None:
    port = node.members["n1"].client
    budget = Budget()

    def example(lines: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in lines) + b'{"op": "get", "key": "rec/0", "id": "sentinel"}\n'
        expected = sum(1 for line in lines if line.strip()) + 1
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(data)
            f = s.makefile("rb")
            replies = [_strict(f.readline()) for _ in range(expected)]
        for r in replies:
            assert isinstance(r, dict) and r["status"] in ("ok", "fail", "info"), r
            if r["status"] != "ok":
                assert isinstance(r.get("error"), str) and r["error"], r
        # exactly one reply per request, in order: the sentinel's comes last and is its own
        assert replies[-1] == {"status": "ok", "value": 0, "id": "sentinel"}

    @FUZZ_SETTINGS
    @given(st.lists(client_lines, min_size=1, max_size=4))
    def one(lines: list[bytes]) -> None:
        budget.run(lambda: example(lines))

    one()
    assert budget.tried >= 20
    _intact(node)


# ---- the admin API ----

names = st.one_of(
    st.just("n1"),
    st.text(max_size=30).filter(lambda t: not (t[:1] == "n" and t[1:].isdigit() and t != "n1")),
    st.sampled_from(["n0", "n01", "n-1", "n1\n", "n" + "9" * 30, "n18446744073709551616", " n1"]),
    json_values,
)
member_bodies = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "add-learner", "promote", "remove", "demote"]) | json_values, "node": names},
    optional={"peer": st.sampled_from(["127.0.0.1:1", "h" * 300 + ":1", "bad host:1", ":", "x:99999"]) | json_values},
)
admin_bodies = st.one_of(
    member_bodies.map(_line),
    st.fixed_dictionaries({"to": names}).map(_line),
    st.fixed_dictionaries({"on": json_values}).map(_line),
    json_values.map(_line),
    st.binary(max_size=100),
    st.just("nested").map(lambda _: b"[" * 50_000),
)
content_lengths = st.one_of(st.none(), st.sampled_from(["-1", "abc", "99999999999", "1e3", " 5", "0", "１２"]))


def _raw_http(port: int, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> int | None:
    """Send one request as bytes; the status code of the answer, None if there was none."""
    head = method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(head + b"\r\n" + body)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # answered and closed before all of it was sent: read the answer
        try:
            first = s.makefile("rb").readline()
        except (TimeoutError, ConnectionResetError):
            return None
    parts = first.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def test_admin_api_fuzz(node: Cluster) -> None:
    port = node.members["n1"].admin
    auth = [(b"Authorization", b"Bearer " + TOKEN.encode())] if node.token else []
    budget = Budget()

    def example(method: bytes, path: bytes, authorized: bool, length: str | None, body: bytes) -> None:
        headers = list(auth) if authorized else [(b"Authorization", b"Bearer wrong")] if node.token else []
        headers.append((b"Content-Length", (length or str(len(body))).encode()))
        status = _raw_http(port, method, path, headers, body)
        assert status is not None, "no answer"
        # a clear error or success; 500 would be an exception the handler did not expect
        assert status in (200, 400, 401, 404, 405, 411, 413, 501, 503, 504), status
        if node.token and not authorized and status == 200:
            raise AssertionError("an unauthenticated request succeeded")

    @FUZZ_SETTINGS
    @given(
        st.sampled_from([b"POST"] * 6 + [b"GET"] * 2 + [b"PUT", b"DELETE", b"HEAD", b"G\x00T"]),
        st.one_of(
            st.sampled_from(["/members", "/transfer-leader", "/quiesce", "/compact", "/status"]),
            st.sampled_from(["/", "/nope", "/status?x=1", "//members", "/members/"]),
            st.binary(max_size=30).map(lambda b: "/" + b.decode("latin-1")),
        ).map(lambda p: p.encode("latin-1").replace(b" ", b"").replace(b"\r", b"").replace(b"\n", b"")),
        st.booleans(),
        content_lengths,
        admin_bodies,
    )
    def one(method: bytes, path: bytes, authorized: bool, length: str | None, body: bytes) -> None:
        budget.run(lambda: example(method, path, authorized, length, body))

    one()
    # and through the client library: a body whose fields are garbage
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/quiesce", body=b'{"on": false}', headers={k.decode(): v.decode() for k, v in auth})
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    _intact(node)


# ---- the peer port ----

u64 = st.integers(min_value=0, max_value=2**64 - 1)
ids = st.sampled_from([0, 1, 2, 3, 99, 2**64 - 1])
entries = st.builds(Entry, u64, u64, st.sampled_from(EntryType), st.binary(max_size=30))
messages = st.builds(
    Message,
    st.sampled_from(MessageType),
    to=ids, from_=ids, term=st.sampled_from([0, 1, 5, 1000, 2**64 - 1]), log_term=u64, index=u64,
    entries=st.lists(entries, max_size=3).map(tuple),
    commit=u64,
    snapshot=st.none() | st.builds(Snapshot, st.binary(max_size=30), st.builds(SnapshotMetadata, index=u64, term=u64)),
    reject=st.booleans(),
    reject_hint=u64,
    context=st.binary(max_size=10),
)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


garbage_chunks = st.one_of(
    st.binary(max_size=100),
    st.binary(max_size=60).map(_frame),
    st.builds(lambda n: struct.pack(">II", n, 0), st.sampled_from([0, 59, 60, 61, 1 << 20, 64 << 20, 2**32 - 1])),
)
message_frames = messages.map(lambda m: _frame(codec.encode_message(m)))
hellos = st.builds(lambda frm, to, tok: hello_frame(tok, frm, to), ids, ids, st.sampled_from([None, b"wrong", TOKEN.encode()]))
# a link as a peer would open it (a hello, then frames of messages), with garbage mixed in
peer_streams = st.builds(
    lambda hello, frames, tail: b"".join([*hello, *frames, *tail]),
    st.lists(hellos, max_size=2),
    st.lists(message_frames | garbage_chunks, min_size=1, max_size=6),
    st.lists(garbage_chunks, max_size=1),
)


def test_peer_port_fuzz(node: Cluster) -> None:
    port = node.members["n1"].peer
    term = node.admin("n1").status()["term"]
    log = node.members["n1"].log_path
    assert log is not None
    lines0 = len(log.read_text().splitlines())
    t0 = time.monotonic()
    budget = Budget()

    def example(stream: bytes) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            try:
                s.sendall(stream)
            except OSError:
                pass  # refused part-way: the node closed it
            s.settimeout(0.2)
            try:
                assert s.recv(1) == b""  # a peer port never answers on an inbound link
            except (TimeoutError, ConnectionResetError):
                pass

    @FUZZ_SETTINGS
    @given(peer_streams)
    def one(stream: bytes) -> None:
        budget.run(lambda: example(stream))

    one()
    time.sleep(0.5)  # whatever was delivered has been stepped (or dropped)
    _intact(node, term)  # no stranger moved its term or its leadership
    lines = len(log.read_text().splitlines()) - lines0
    elapsed = time.monotonic() - t0
    assert lines < 20 + 4 * elapsed, f"{lines} log lines in {elapsed:.0f}s: refusals must be rate-limited"
