"""Controller-owned proxies for HTTP peer transports that name their sender (etcd's rafthttp).

An etcd member advertises one peer URL that every other member dials, so the local provider's
per-link proxies (`harness.net.proxy`) cannot tell links apart. Here there is one proxy per
destination member instead: the member advertises the proxy's address and listens on its own
peer port behind it. Every request of etcd's Raft transport (stream GETs to
/raft/stream/{msgapp,message}/<id>, pipeline POSTs to /raft, snapshot POSTs to
/raft/snapshot) carries `X-PeerURLs`, the sender's advertised peer URLs, which are proxy
addresses here, so the first request of a connection names its source node. A connection's
source never changes afterwards: each member's HTTP transports only carry its own requests.

Requests that name no sender (the prober's GET /raft/probing, the leader's GET /version polls,
a joining member's GET /members) are not Raft traffic: they are forwarded regardless of
partitions, each on a connection of its own (`Connection: close` is added to the request), so
a pooled connection first used by a probe is never reused for a pipeline POST whose sender
the proxy would not know. A request that names a sender the proxy does not know is refused
(the connection is reset), so a misconfiguration shows as a dead link, never as a partition
that silently does not apply.

A partition is a set of directed links (src, dst), as in `harness.net.grudges`. Bytes travelling
X -> Y on any connection between X and Y (requests src -> dst, responses and stream payload
dst -> src) are dropped while (X, Y) is cut, as packets dropped by a firewall: nothing is
refused, the other side sees silence. A connection accepted while either direction is cut is
never connected to dst. Healing closes every connection that lived through a cut (its byte
streams have holes), so the members reconnect cleanly. Client traffic (etcdctl, the workload)
goes to each member's client port directly and is never proxied.

A directed link may be degraded (`set_conditions`, harness.net.linkcond) in `byte` units
only: the bytes travelling X -> Y on any connection between X and Y are delayed (delay,
jitter, and reordering across connections: etcd's msgapp stream, message stream and pipeline
posts each have their own). Requests that name no sender are not delayed (their sender is
unknown). Loss and duplication of a byte stream cannot be made real here (see linkcond).
"""

from __future__ import annotations

import logging
import math
import random
import selectors
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from harness.net.linkcond import Backlog, LinkConditions, Shaper, combine
from harness.net.selector_loop import CHUNK, SelectorLoop, drained

log = logging.getLogger(__name__)

HEAD_LIMIT = 64 * 1024  # a first request whose header is longer is not HTTP from a member
_END = b"\r\n\r\n"


class HeadError(ValueError):
    """The first bytes of a connection are not an HTTP/1.x request header."""


@dataclass(frozen=True)
class RequestHead:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value


def parse_head(raw: bytes) -> RequestHead:
    """Parse an HTTP/1.x request line and header block (without the final empty line)."""
    lines = raw.decode("latin-1").split("\r\n")  # latin-1 maps every byte: never fails
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HeadError(f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HeadError(f"malformed header line: {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return RequestHead(parts[0], parts[1], headers)


def with_connection_close(raw: bytes) -> bytes:
    """The request header `raw` (without its final empty line) asking the server to close the
    connection after answering; any Connection header it had is replaced."""
    lines = [ln for ln in raw.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"])


def _hostport(url: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or port is None:
        return None
    return parts.hostname, port


@dataclass(eq=False)
class _Conn:
    """One accepted connection from a member to `dst`, and its upstream leg."""

    dst: str
    down: socket.socket  # from the dialing member
    up: socket.socket | None = None  # to dst's own peer port (None until classified, or if cut)
    src: str | None = None  # the sender, once its first request named it
    anonymous: bool = False  # its one request named no sender: not Raft traffic
    head: bytearray = field(default_factory=bytearray)  # bytes before the first request is classified
    to_up: bytearray = field(default_factory=bytearray)
    to_down: bytearray = field(default_factory=bytearray)
    connected: bool = False
    tainted: bool = False  # lived through a cut
    late_up: Backlog = field(default_factory=Backlog)
    late_down: Backlog = field(default_factory=Backlog)
    closing: bool = False

    @property
    def classified(self) -> bool:
        return self.src is not None or self.anonymous


@dataclass
class _LinkStats:
    conns: int = 0  # connections accepted on this link
    forwarded: int = 0
    dropped: int = 0
    delayed: int = 0  # chunks that waited under a link condition


class HttpPeerProxies(SelectorLoop):
    """One proxy per destination node, all served by one selector thread. `targets` maps each
    node to the address its member really listens on for peers."""

    def __init__(self, targets: Mapping[str, tuple[str, int]], host: str = "127.0.0.1") -> None:
        super().__init__("etcd-peer-proxies")
        self.host = host
        self._targets = dict(targets)
        self._listeners: dict[str, socket.socket] = {}
        self._by_addr: dict[tuple[str, int], str] = {}
        self._conns: set[_Conn] = set()
        self._cut: set[tuple[str, str]] = set()
        self._stats: dict[tuple[str, str], _LinkStats] = {}
        #: Link conditions by directed link and owner (one fault each), and their shapers.
        self._conditions: dict[tuple[str, str], dict[str, LinkConditions]] = {}
        self._shapers: dict[tuple[str, str], Shaper] = {}
        self._lagging: set[_Conn] = set()
        self.anonymous_requests = 0
        self.refused = 0
        for dst in self._targets:
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind((host, 0))
            lsock.listen(64)
            lsock.setblocking(False)
            self._listeners[dst] = lsock
            self._by_addr[lsock.getsockname()[:2]] = dst
            self._sel.register(lsock, selectors.EVENT_READ, ("accept", dst))
        self._start()

    # ---- control (any thread) ----

    def address(self, dst: str) -> tuple[str, int]:
        """The address every member dials to reach `dst` (what `dst` advertises)."""
        addr: tuple[str, int] = self._listeners[dst].getsockname()[:2]
        return addr

    def node_of_url(self, url: str) -> str | None:
        hp = _hostport(url)
        return None if hp is None else self._by_addr.get(hp)

    def set_cut(self, links: set[tuple[str, str]]) -> None:
        """Cut exactly `links` (directed src, dst pairs); heal every other link."""
        unknown = {n for link in links for n in link} - set(self._targets)
        if unknown:
            raise KeyError(f"no proxy for nodes {sorted(unknown)}")
        self._call(lambda: self._apply_cut(set(links)))

    def cut_links(self) -> set[tuple[str, str]]:
        return set(self._cut)

    def set_conditions(
        self, owner: str, conditions: Mapping[tuple[str, str], LinkConditions], seed: int = 0
    ) -> None:
        """Degrade exactly the links of `conditions` (byte units) on behalf of `owner`; its
        conditions elsewhere are removed, other owners' stay and combine."""
        unknown = {n for link in conditions for n in link} - set(self._targets)
        if unknown:
            raise KeyError(f"no proxy for nodes {sorted(unknown)}")
        units = {c.unit for c in conditions.values()} - {"byte"}
        if units:
            raise ValueError(f"etcd peer proxies carry HTTP byte streams: cannot degrade them in {sorted(units)} units")

        def apply() -> None:
            for key in set(conditions) | set(self._conditions):
                owned = self._conditions.setdefault(key, {})
                if key in conditions:
                    owned[owner] = conditions[key]
                elif owned.pop(owner, None) is None:
                    continue
                self._reshape(key, random.Random(f"{seed}:{key[0]}->{key[1]}"))

        self._call(apply)

    def clear_conditions(self, owner: str | None = None) -> list[tuple[str, str]]:
        """Remove `owner`'s conditions (everyone's if None); returns the links that had some."""
        cleared: list[tuple[str, str]] = []

        def apply() -> None:
            for key, owned in self._conditions.items():
                if owner is None and owned:
                    owned.clear()
                elif owner is None or owned.pop(owner, None) is None:
                    continue
                cleared.append(key)
                self._reshape(key, random.Random(f"{owner}:{key[0]}->{key[1]}"))

        self._call(apply)
        return sorted(cleared)

    def conditions(self) -> dict[tuple[str, str], LinkConditions]:
        return {k: s.cond for k, s in self._shapers.items()}

    def stats(self) -> dict[str, dict[str, int]]:
        """Per directed link: connections accepted, bytes forwarded and dropped."""
        out: dict[str, dict[str, int]] = {}

        def read() -> None:  # on the proxy thread, which adds links as senders show up
            out.update({f"{s}->{d}": vars(st).copy() for (s, d), st in sorted(self._stats.items())})

        self._call(read)
        return out

    def open_connections(self) -> int:
        return len(self._conns)

    def close(self) -> None:
        def close_all() -> None:
            for c in list(self._conns):
                self._close(c)
            for lsock in self._listeners.values():
                self._sel.unregister(lsock)
                lsock.close()
            self._listeners.clear()

        self._shut_down(close_all)

    # ---- the selector thread ----

    def _select_timeout(self) -> float:
        due = [t for c in self._lagging for t in (c.late_up.next_due(), c.late_down.next_due()) if t is not None]
        return 1.0 if not due else max(0.0, min(1.0, min(due) - time.monotonic()))

    def _after_select(self) -> None:  # delayed bytes whose time has come
        if self._lagging:
            now = time.monotonic()
            for c in list(self._lagging):
                self._deliver_due(c, now)

    def _reshape(self, key: tuple[str, str], rng: random.Random) -> None:
        cond = combine(self._conditions.get(key, {}).values())
        if cond is None:
            self._shapers.pop(key, None)
            # what the cleared direction delays is delivered now (in _after_select, in order)
            self._lagging.update(c for c in self._conns if c.late_up or c.late_down)
        else:
            self._shapers[key] = Shaper(cond, rng)

    def _deliver_due(self, c: _Conn, now: float) -> None:
        for late, buf, up in ((c.late_up, c.to_up, True), (c.late_down, c.to_down, False)):
            if not late:
                continue
            pair = None if c.src is None else ((c.src, c.dst) if up else (c.dst, c.src))
            data, _ = late.pop_due(now if pair in self._shapers else math.inf)
            if pair is not None and pair in self._cut:
                self._stats.setdefault(pair, _LinkStats()).dropped += len(data)
            else:
                buf += data
        if not c.late_up and not c.late_down:
            self._lagging.discard(c)
        if c.closing and drained(c):
            self._close(c)
            return
        self._interest(c)

    def _apply_cut(self, links: set[tuple[str, str]]) -> None:
        self._cut = links
        for c in list(self._conns):
            if c.src is None:
                continue
            up_cut, down_cut = (c.src, c.dst) in links, (c.dst, c.src) in links
            if up_cut or down_cut:
                c.tainted = True
                if up_cut:
                    c.to_up.clear()
                if down_cut:
                    c.to_down.clear()
            elif c.tainted:
                self._close(c)
                continue
            self._interest(c)

    def _accept(self, dst: str) -> None:
        try:
            down, _ = self._listeners[dst].accept()
        except (BlockingIOError, OSError):
            return
        down.setblocking(False)
        down.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Conn(dst, down)
        self._conns.add(c)
        self._sel.register(down, selectors.EVENT_READ, ("conn", c))

    def _classify(self, c: _Conn) -> None:
        """c.head holds a whole request header: learn the sender and connect upstream."""
        end = c.head.index(_END)
        raw, rest = bytes(c.head[:end]), bytes(c.head[end + len(_END):])
        c.head.clear()
        try:
            head = parse_head(raw)
        except HeadError as e:
            log.warning("etcd peer proxy ->%s: %s; resetting the connection", c.dst, e)
            self._refuse(c)
            return
        urls = head.headers.get("x-peerurls")
        if urls is None and "x-server-from" not in head.headers:
            c.anonymous = True
            self.anonymous_requests += 1
            c.to_up += with_connection_close(raw) + _END + rest
            self._connect_up(c)
            return
        # A member may dial its own advertised URL (a re-added member does while it joins):
        # such a connection is forwarded, no partition ever cuts a node from itself.
        src = next((n for u in (urls or "").split(",") if (n := self.node_of_url(u)) is not None), None)
        if src is None:
            log.warning("etcd peer proxy ->%s: %s %s from unknown sender (X-PeerURLs %r, X-Server-From %r); "
                        "resetting the connection", c.dst, head.method, head.path, urls,
                        head.headers.get("x-server-from"))
            self._refuse(c)
            return
        c.src = src
        st = self._stats.setdefault((src, c.dst), _LinkStats())
        st.conns += 1
        if (src, c.dst) in self._cut or (c.dst, src) in self._cut:
            # The handshake would not have got through: dst never sees this connection.
            c.tainted = True
            st.dropped += len(raw) + len(_END) + len(rest)
            return
        self._push(c, c.late_up, c.to_up, (src, c.dst), raw + _END + rest)
        self._connect_up(c)

    def _refuse(self, c: _Conn) -> None:
        self.refused += 1
        try:  # a reset, not a clean close: the dialer must not take it for an answer
            c.down.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self._close(c)

    def _connect_up(self, c: _Conn) -> None:
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setblocking(False)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.up = up
        err = up.connect_ex(self._targets[c.dst])
        if err not in (0, 115):  # 115 = EINPROGRESS
            self._close(c)
            return
        self._sel.register(up, selectors.EVENT_WRITE, ("conn", c))

    @staticmethod
    def _pair(c: _Conn, sock: socket.socket) -> tuple[str, str] | None:
        """The directed link bytes read from (or written to) `sock` of `c` travel along; None
        for a connection whose sender is not known."""
        if c.src is None:
            return None
        return (c.src, c.dst) if sock is c.down else (c.dst, c.src)

    def _service(self, c: _Conn, sock: socket.socket, mask: int) -> None:
        if sock.fileno() < 0:
            return  # closed by an earlier event of the same select() round
        if sock is c.up and not c.connected and mask & selectors.EVENT_WRITE:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                self._close(c)  # dst is down: the dialer sees its connection closed
                return
            c.connected = True
        if mask & selectors.EVENT_READ and not self._read(c, sock):
            return
        if sock.fileno() < 0:
            return
        if mask & selectors.EVENT_WRITE:
            out, buf = (c.up, c.to_up) if sock is c.up else (c.down, c.to_down)
            if buf and out is not None and (out is c.down or c.connected):
                try:
                    n = out.send(buf)
                except BlockingIOError:
                    n = 0
                except OSError:
                    self._close(c)
                    return
                del buf[:n]
                if c.src is not None:
                    pair = (c.src, c.dst) if out is c.up else (c.dst, c.src)
                    self._stats.setdefault(pair, _LinkStats()).forwarded += n
        if c.closing and drained(c):
            self._close(c)
            return
        self._interest(c)

    def _read(self, c: _Conn, sock: socket.socket) -> bool:
        """Read what `sock` has; False if the connection was closed meanwhile."""
        try:
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            self._close(c)
            return False
        if data == b"":
            if c.classified and c.up is not None and not drained(c):
                c.closing = True  # deliver what is on its way, then close
                self._interest(c)
                return True
            self._close(c)
            return False
        if not c.classified:
            c.head += data
            if _END in c.head:
                self._classify(c)
                return c.down.fileno() >= 0
            if len(c.head) > HEAD_LIMIT:
                log.warning("etcd peer proxy ->%s: no request header in %d bytes; resetting", c.dst, len(c.head))
                self._refuse(c)
                return False
            return True
        pair = self._pair(c, sock)
        # Dropped on a cut link, and on a connection accepted across a cut (never connected
        # upstream: its handshake would not have completed) even after one direction healed.
        if pair is not None and (pair in self._cut or c.up is None):
            self._stats.setdefault(pair, _LinkStats()).dropped += len(data)  # blackholed
        elif sock is c.down:
            self._push(c, c.late_up, c.to_up, pair, data)
        else:
            self._push(c, c.late_down, c.to_down, pair, data)
        return True

    def _push(self, c: _Conn, late: Backlog, buf: bytearray, pair: tuple[str, str] | None, data: bytes) -> None:
        """Bytes travelling `pair`: now, or once due under its conditions (in order)."""
        shaper = None if pair is None else self._shapers.get(pair)
        if shaper is None and not late:
            buf += data
            return
        lag = 0.0 if shaper is None else late.stream_lag(shaper)
        if lag > 0 and pair is not None:
            self._stats.setdefault(pair, _LinkStats()).delayed += 1
        late.push(data, time.monotonic() + lag)
        self._lagging.add(c)

    def _close(self, c: _Conn) -> None:
        self._lagging.discard(c)
        self._close_sockets(c)
        self._conns.discard(c)
