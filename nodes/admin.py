"""Admin HTTP API (JSON over HTTP/1.1): status, leader transfer, membership, compaction, quiesce.

Every operation runs on the node loop thread through Node.call, so it sees a consistent
RawNode. Errors are HTTP 4xx/5xx with {"error": "..."}.
"""

from __future__ import annotations

import errno
import hmac
import json
import logging
import socket
import time
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from nodes import protocol
from nodes.events import node_name
from nodes.fdwait import wait_done
from nodes.options import ConfigError, parse_addr, parse_name
from nodes.poller import (
    ACCEPT_BACKOFF_MAX,
    ACCEPT_BACKOFF_MIN,
    FD_RESERVE,
    RESOURCE_ERRNOS,
    fd_limit,
)
from nodes.raft import ConfChange, ConfChangeType, ConfState, ProposalDropped
from nodes.ratelog import Throttled
from nodes.status import status_document
from nodes.steadyclock import SteadyClock

if TYPE_CHECKING:
    from nodes.node import Node

log = logging.getLogger(__name__)

MEMBER_OPS = {
    "add": ConfChangeType.ADD_NODE,
    "add-learner": ConfChangeType.ADD_LEARNER_NODE,
    "promote": ConfChangeType.ADD_NODE,
    "remove": ConfChangeType.REMOVE_NODE,
}
MAX_BODY = 64 << 10  # admin bodies are a few fields
TRANSFER_WAIT = 1.8  # fits the admin client's default 2 s timeout; Raft aborts a transfer after an election timeout


class AdminFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_member_change(op: str, nid: int, conf: ConfState) -> None:
    """Refuse (400) a change that names no member to change, or one that would leave no
    voters; whatever is accepted here can be applied by every replica."""
    name = node_name(nid)
    if op == "remove":
        if nid not in conf.voters and nid not in conf.learners:
            raise AdminFailure(400, f"{name} is not a member")
        if conf.voters == (nid,):
            raise AdminFailure(400, f"removing {name} would leave no voters")
    elif op == "promote" and nid not in conf.learners:
        raise AdminFailure(400, f"{name} is not a learner")


class _Handler(BaseHTTPRequestHandler):
    server: AdminServer
    protocol_version = "HTTP/1.1"
    timeout = 10.0  # an idle or half-sent request does not hold its thread forever

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("admin: " + format, *args)

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        if code == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        """The request's body (at most MAX_BODY bytes), read before anything is answered, so
        that the answer is not lost to a reset of a connection closed with data unread."""
        text = self.headers.get("Content-Length")
        if text is None:
            return b""
        if not (text.isascii() and text.isdigit()):
            self.close_connection = True
            raise AdminFailure(400, f"Content-Length {text[:20]!r} is not a number")
        n = int(text)
        if n > MAX_BODY:
            self.close_connection = True
            self._drain()
            raise AdminFailure(413, f"request body over {MAX_BODY} bytes")
        return self.rfile.read(n) if n else b""

    def _drain(self) -> None:
        """Read what the client has already sent (briefly), then let the connection go."""
        try:
            self.connection.settimeout(0.05)
            while self.rfile.read1(1 << 16):
                pass
        except OSError:
            pass

    @staticmethod
    def _json(raw: bytes) -> dict[str, Any]:
        try:
            body = protocol.loads(raw or b"{}", "request body")
        except protocol.ProtocolError as e:
            raise AdminFailure(400, str(e)) from None
        if not isinstance(body, dict):
            raise AdminFailure(400, "request body must be a JSON object")
        return body

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        given = self.headers.get("Authorization") or ""
        scheme, _, value = given.partition(" ")
        # compare_digest: the time taken does not tell how much of a guess was right
        return scheme == "Bearer" and hmac.compare_digest(value.strip().encode("latin-1", "replace"), token)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        admin = self.server.admin
        routes = {
            ("GET", "/status"): admin.status,
            ("POST", "/transfer-leader"): admin.transfer_leader,
            ("POST", "/members"): admin.members,
            ("POST", "/compact"): admin.compact,
            ("POST", "/quiesce"): admin.quiesce,
        }
        fn = routes.get((method, self.path.split("?")[0]))
        try:
            raw = self._read_body()
            if not self._authorized():
                raise AdminFailure(401, "missing or wrong admin token (Authorization: Bearer TOKEN)")
            if fn is None:
                raise AdminFailure(404, f"no route {method} {self.path}")
            body = self._json(raw) if method == "POST" else {}
            self._reply(200, fn(body))
        except AdminFailure as e:
            self._reply(e.code, {"error": str(e)})
        except Exception as e:  # report, never kill the server thread silently
            log.exception("admin %s %s failed", method, self.path)
            self._reply(500, {"error": f"{type(e).__name__}: {e}"})


class Admin:
    """The operations behind the routes; each runs its RawNode part on the loop thread."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def _wait(self, fut: Future[Any], timeout: float) -> Any:
        if not wait_done(fut, timeout):
            raise AdminFailure(504, "node loop did not answer in time")
        try:
            return fut.result()
        except TimeoutError as e:
            raise AdminFailure(504, str(e)) from e
        except ProposalDropped as e:
            raise AdminFailure(503, str(e)) from e

    def status(self, body: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        result: dict[str, Any] = self._wait(node.call(lambda: status_document(node)), 2.0)
        return result

    def _node_id(self, body: dict[str, Any], field: str) -> int:
        name = body.get(field)
        if not isinstance(name, str):
            raise AdminFailure(400, f"field {field!r} must be a node name like n2")
        try:
            return parse_name(name, field)
        except ConfigError as e:
            raise AdminFailure(400, str(e)) from e

    def transfer_leader(self, body: dict[str, Any]) -> dict[str, Any]:
        to = self._node_id(body, "to")
        self._wait(self.node.call(lambda: self.node.rn.transfer_leader(to)), 2.0)
        clock = SteadyClock()
        deadline = clock.now() + TRANSFER_WAIT
        while clock.now() < deadline:
            st = self.status({})
            if st["lead"] == node_name(to):
                return {"lead": st["lead"], "term": st["term"]}
            time.sleep(0.05)
        raise AdminFailure(504, f"leadership did not move to {node_name(to)} within {TRANSFER_WAIT}s")

    def members(self, body: dict[str, Any]) -> dict[str, Any]:
        op = body.get("op")
        if not isinstance(op, str) or op not in MEMBER_OPS:
            raise AdminFailure(400, f"field 'op' must be one of {', '.join(MEMBER_OPS)}")
        nid = self._node_id(body, "node")
        peer = body.get("peer")
        if peer is not None:
            try:
                parse_addr(peer if isinstance(peer, str) else "", "peer")
            except ConfigError as e:
                raise AdminFailure(400, str(e)) from e
        if peer is None and op in ("add", "add-learner"):
            known = self.node.cfg.peers.get(nid) or self.node.transport.addrs.get(nid)
            if known is None and nid != self.node.cfg.raft_id:
                raise AdminFailure(400, f"no address for {node_name(nid)}: pass 'peer' or list it in --peers")
        rid = self.node.next_rid()
        ctx = json.dumps({"rid": rid, "peer": peer}).encode()
        cc = ConfChange(MEMBER_OPS[op], nid, ctx)
        applied: Future[Any] = Future()

        def propose() -> None:
            # checked on the loop thread against the configuration the change would alter
            check_member_change(op, nid, self.node.conf_state)
            self.node.propose_conf(cc, rid, applied)

        self._wait(self.node.call(propose), 2.0)
        result: dict[str, Any] = self._wait(applied, 3 * self.node.cfg.request_timeout)
        return result

    def compact(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._wait(self.node.call(lambda: self.node.compact(keep=0)), 10.0)
        return result

    def quiesce(self, body: dict[str, Any]) -> dict[str, Any]:
        on = body.get("on")
        if not isinstance(on, bool):
            raise AdminFailure(400, "field 'on' must be true or false")

        def set_quiesce() -> dict[str, Any]:
            self.node.quiesced = on
            return {"quiesced": on}

        result: dict[str, Any] = self._wait(self.node.call(set_quiesce), 2.0)
        return result


class AdminServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    admin: Admin  # set by attach() before serve_forever()
    token: bytes | None = None  # required of every request when set (--token-file)

    def __init__(self, addr: tuple[str, int]) -> None:
        super().__init__(addr, _Handler)
        self._backoff = 0.0
        self._limit = fd_limit()
        self._throttle = Throttled(log)

    def get_request(self) -> tuple[socket.socket, Any]:
        """accept(), shedding as nodes/poller.py's Acceptor does: socketserver retries a
        failed accept at once, which out of descriptors spins this thread (and takes the
        GIL from the node loop)."""
        try:
            conn, addr = super().get_request()
        except OSError as e:
            if e.errno in RESOURCE_ERRNOS:
                self._backoff = min(max(2 * self._backoff, ACCEPT_BACKOFF_MIN), ACCEPT_BACKOFF_MAX)
                self._throttle.warning("accept", "admin: accept: %s; not accepting for %.2f s", e.strerror, self._backoff)
                time.sleep(self._backoff)
            raise
        self._backoff = 0.0
        if self._limit is not None and conn.fileno() >= self._limit - FD_RESERVE:
            self._throttle.warning(
                "shed", "admin: nearly out of file descriptors (limit %d): refusing new connections", self._limit
            )
            conn.close()
            raise OSError(errno.EMFILE, "descriptors reserved")  # socketserver drops it quietly
        return conn, addr

    def attach(self, node: Node) -> None:
        self.admin = Admin(node)
        self.token = node.cfg.token

