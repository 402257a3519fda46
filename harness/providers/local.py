"""LocalProvider: every node is a set of processes on this machine; no root needed.

Ports come from the OS. Each directed peer link src -> dst goes through a controller-owned
TCP proxy (`harness.net.proxy`), so a partition is a real blackholed TCP link. A system whose
members advertise one peer address each (etcd) asks for `http_peer_address(dst)` instead: one
proxy per destination that learns each connection's sender from its HTTP headers
(`harness.net.etcd_proxy`); partitions cut both kinds alike, and link faults degrade both
(`harness.net.linkcond`): raftkv's links per Raft message (delay, jitter, loss, duplication,
reordering), other systems' byte streams by delay only (delay, jitter, reordering across
connections; loss and duplication are refused: see `link_refusal`). Each node's wall and
monotonic clocks are its own (libfaketime driven by a clock log, harness.providers.clock), when
libfaketime is installed and a node's Python runs right under it here (probed once at setup).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import disk
from harness.disk.hostfs import HostDisks, HostFaultfs
from harness.net.etcd_proxy import HttpPeerProxies
from harness.net.linkcond import BYTE_STREAM_LOSS, LinkConditions
from harness.net.proxy import ProxyHub
from harness.protocols import DB, HarnessError, NodeAddresses, RaftkvTransport, Remote
from harness.providers.clock import ClockOp, ClockState, LocalClocks, find_libfaketime, set_ops
from harness.providers.clock import asked_for as clock_asked_for
from harness.remotes.local import LocalRemote
from harness.run.leftovers import CONTROLLER_PID, controller_marker

log = logging.getLogger(__name__)

@contextlib.contextmanager
def reserved_ports(host: str, count: int) -> Iterator[list[int]]:
    """`count` distinct ports free on `host`, held bound until the block ends: anything else
    that binds an ephemeral port meanwhile (the proxies) cannot be handed one of them, and
    one at a time the kernel may hand the same just-released port out twice."""
    # Taken below the kernel's ephemeral range: an ephemeral port, once released, can become
    # the source port of any outgoing connection before the node binds it.
    low, high = _static_port_range()
    rng = random.Random()
    socks: list[socket.socket] = []
    try:
        for _ in range(50 * count):
            if len(socks) == count:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((host, rng.randint(low, high)))
            except OSError as e:
                s.close()
                if e.errno == errno.EADDRINUSE:
                    continue
                raise HarnessError(f"local provider: cannot bind {host}: {e.strerror}") from None
            socks.append(s)
        if len(socks) < count:
            raise HarnessError(f"local provider: no {count} free ports on {host} in {low}-{high}")
        yield [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _static_port_range() -> tuple[int, int]:
    """Ports the kernel never hands out by itself: from 10000 to just below its ephemeral range."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    return 10000, max(10000 + 1000, ephemeral_low - 1)


#: Counters of the proxies reported when a link fault is undone.
LINK_COUNTERS = ("msgs_lost", "msgs_duplicated", "delayed", "overtaken")


@dataclass
class _LinkFault:
    """One owner's link conditions, and the proxies' counters on its links when it began."""

    conditions: dict[tuple[str, str], LinkConditions]
    seed: int
    baseline: dict[tuple[str, str], Counter[str]]


def _counters_of(cond: LinkConditions) -> set[str]:
    """The proxy counters that say what `cond` did."""
    out = set()
    if cond.delay_ms or cond.jitter_ms:
        out.add("delayed")
    if cond.loss:
        out.add("msgs_lost")
    if cond.duplicate:
        out.add("msgs_duplicated")
    if cond.reorder and cond.unit == "message":  # a byte stream's reordering is across connections: not counted
        out.add("overtaken")
    return out


def free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports free on `host` now (released at once)."""
    with reserved_ports(host, count) as ports:
        return ports


class LocalProvider(HostDisks):
    name = "local"

    def __init__(self, work_dir: Path, host: str = "127.0.0.1", clock: bool = True, disks: bool = False,
                 disk_metadata: str = "posix") -> None:
        self.work_dir = work_dir
        self.host = host
        self.hub: ProxyHub | None = None
        #: Made on the first http_peer_address() call (only etcd needs them).
        self.http_peers: HttpPeerProxies | None = None
        self._http_peers_lock = threading.Lock()
        self.nodes: list[str] = []
        self._addrs: dict[str, NodeAddresses] = {}
        self._remotes: dict[str, LocalRemote] = {}
        self._want_clock = clock
        self.clocks: LocalClocks | None = None
        self.clock_refusal = "clock faults are disabled for this run"
        self.supports_clock = False
        self._link_faults: dict[str, _LinkFault] = {}  # by owner, oldest first
        self._want_disks = disks
        self._disk_metadata = disk_metadata
        #: the nodes' data dirs on faultfs (harness.disk), when a disk fault is asked for
        self.disks: HostFaultfs | None = None

    # ---- hosts ----

    def node_dir(self, node: str) -> Path:
        return self.work_dir / node

    def setup(self, nodes: Sequence[str]) -> dict[str, Remote]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # lets a later run or `faultline analyze` reap our nodes if this controller dies
        (self.work_dir / CONTROLLER_PID).write_text(controller_marker())
        self.nodes = list(nodes)
        self.hub = ProxyHub(self.host)
        with reserved_ports(self.host, 3 * len(self.nodes)) as reserved:
            ports = iter(reserved)
            for n in self.nodes:
                self.node_dir(n).mkdir(parents=True, exist_ok=True)
                self._addrs[n] = NodeAddresses(
                    peer_listen=(self.host, next(ports)),
                    client=(self.host, next(ports)),
                    admin=(self.host, next(ports)),
                )
                self._remotes[n] = LocalRemote(n)
            # The proxies bind their ports while the nodes' are still held.
            for src in self.nodes:
                for dst in self.nodes:
                    if src != dst:
                        self.hub.add_link(src, dst, self._addrs[dst].peer_listen)
        self._setup_clock()
        if self._want_disks:
            self.disks = HostFaultfs(self.work_dir, self._disk_metadata)
            for n in self.nodes:
                self.disks.mount(n)
        return dict(self._remotes)

    def _setup_clock(self) -> None:
        if not self._want_clock:
            return
        lib = find_libfaketime()
        if lib is None:
            self.clock_refusal = "libfaketime is not installed (Debian package libfaketime)"
            return
        clocks = LocalClocks(self.work_dir / "clocks", lib)
        reason = clocks.probe()
        if reason is not None:
            self.clock_refusal = reason
            log.warning("clock faults unavailable: %s", reason)
            return
        for n in self.nodes:
            clocks.init(n)
        self.clocks = clocks
        self.supports_clock = True

    def addresses(self, node: str) -> NodeAddresses:
        try:
            return self._addrs[node]
        except KeyError:
            raise HarnessError(f"local provider: unknown node {node!r}") from None

    def peer_address(self, src: str, dst: str) -> tuple[str, int]:
        if src == dst:
            return self.addresses(dst).peer_listen
        if self.hub is None:
            raise HarnessError("local provider: peer_address before setup")
        return self.hub.address(src, dst)

    def message_hub(self) -> ProxyHub:
        """The proxies of every directed peer link, for message-level faults."""
        if self.hub is None:
            raise HarnessError("local provider: message_hub before setup")
        return self.hub

    def http_peer_address(self, dst: str) -> tuple[str, int]:
        """The address every member dials to reach `dst`'s peer port when the peer protocol
        names its sender in HTTP headers (etcd's rafthttp): `dst` advertises it."""
        if self.hub is None:
            raise HarnessError("local provider: http_peer_address before setup")
        with self._http_peers_lock:  # a DB may start its members from several threads
            if self.http_peers is None:
                self.http_peers = HttpPeerProxies({n: a.peer_listen for n, a in self._addrs.items()}, self.host)
                self.http_peers.set_cut(self.hub.cut_links())
                for owner, lf in self._link_faults.items():
                    self._degrade_http_peers(owner, lf)
            peers = self.http_peers
        try:
            return peers.address(dst)
        except KeyError:
            raise HarnessError(f"local provider: unknown node {dst!r}") from None

    # ---- network faults ----

    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        """Cut link src -> dst for every src in grudge[dst]; every other link is healed."""
        if self.hub is None:
            raise HarnessError("local provider: partition before setup")
        links = {(src, dst) for dst, srcs in grudge.items() for src in srcs if src != dst}
        self.hub.set_cut(links)
        if self.http_peers is not None:
            self.http_peers.set_cut(links)
        log.info("partition: cut %d links: %s", len(links), sorted(f"{s}->{d}" for s, d in links))

    def heal(self) -> None:
        if self.hub is not None:
            self.hub.set_cut(set())
        if self.http_peers is not None:
            self.http_peers.set_cut(set())

    # ---- link faults ----

    def link_unit(self, db: DB) -> str:
        """raftkv's links are split into Raft messages; anything else is a byte stream."""
        return "message" if isinstance(db, RaftkvTransport) else "byte"

    def link_refusal(self, kind: str, db: DB) -> str | None:
        if kind in ("loss", "duplicate") and self.link_unit(db) == "byte":
            return (f"the local provider's proxies see {db.name}'s peer traffic as TCP byte streams, which cannot "
                    f"lose or duplicate data as {db.name} would see it ({BYTE_STREAM_LOSS}); use provider netns "
                    "for packet loss, or nemesis.links: [delay, jitter, reorder]")
        return None

    def set_link_conditions(
        self, owner: str, conditions: Mapping[tuple[str, str], LinkConditions], seed: int
    ) -> None:
        if self.hub is None:
            raise HarnessError("local provider: link faults before setup")
        try:
            self.hub.set_conditions(owner, conditions, seed)
        except KeyError as e:
            raise HarnessError(f"local provider: {e.args[0]}") from None
        lf = _LinkFault(dict(conditions), seed, self._link_counters())
        self._link_faults[owner] = lf
        self._degrade_http_peers(owner, lf)
        log.info("link fault %s: %s", owner, {f"{s}->{d}": c.value() for (s, d), c in sorted(conditions.items())})

    def _degrade_http_peers(self, owner: str, lf: _LinkFault) -> None:
        if self.http_peers is not None:  # raftkv's message conditions never reach etcd's proxies
            self.http_peers.set_conditions(owner, {k: c for k, c in lf.conditions.items() if c.unit == "byte"}, lf.seed)

    def clear_link_conditions(self, owner: str | None = None) -> dict[str, Any]:
        if self.hub is None:
            return {}
        links = set(self.hub.clear_conditions(owner))
        if self.http_peers is not None:
            links |= set(self.http_peers.clear_conditions(owner))
        owners = list(self._link_faults) if owner is None else [owner]
        now = self._link_counters()
        baseline: dict[tuple[str, str], Counter[str]] = {}
        counters: set[str] = set()
        for o in owners:
            lf = self._link_faults.pop(o, None)
            if lf is None:
                continue
            for pair, cond in lf.conditions.items():  # the oldest owner's baseline counts for a shared link
                baseline.setdefault(pair, lf.baseline.get(pair, Counter()))
                counters |= _counters_of(cond)
        if not links:
            return {}
        done = Counter[str]()
        for pair, base in baseline.items():
            done.update(now.get(pair, Counter()) - base)
        return {"links": [list(pair) for pair in sorted(links)], **{k: done[k] for k in LINK_COUNTERS if k in counters}}

    def _link_counters(self) -> dict[tuple[str, str], Counter[str]]:
        """What the proxies did per directed link so far (messages lost, ...)."""
        out: dict[tuple[str, str], Counter[str]] = {}
        for stats in [self.hub.stats() if self.hub else {}, self.http_peers.stats() if self.http_peers else {}]:
            for name, st in stats.items():
                src, dst = name.split("->")
                out.setdefault((src, dst), Counter()).update({k: st.get(k, 0) for k in LINK_COUNTERS})
        return out

    # ---- clocks ----

    def node_env(self, node: str) -> dict[str, str]:
        return {} if self.clocks is None else self.clocks.env(node)

    def _clocks(self, node: str) -> LocalClocks:
        if self.clocks is None:
            raise HarnessError(f"local provider: cannot change clocks: {self.clock_refusal}")
        if node not in self._addrs:
            raise HarnessError(f"local provider: unknown node {node!r}")
        return self.clocks

    def change_clock(self, node: str, ops: Sequence[ClockOp]) -> None:
        self._clocks(node).append(node, ops)

    def set_clock(self, node: str, offset_s: float, rate: float = 1.0) -> None:
        self.change_clock(node, set_ops(offset_s, rate))

    def clock_state(self, node: str) -> ClockState | None:
        return self._clocks(node).state(node)

    def collect_clock(self, node: str, dest: Path) -> None:
        if self.clocks is not None:
            self.clocks.collect(node, dest)

    # ---- teardown ----

    def teardown(self) -> None:
        if self.disks is not None:
            self.disks.teardown()
            self.disks = None
        if self.http_peers is not None:
            self.http_peers.close()
            self.http_peers = None
        if self.hub is not None:
            self.hub.close()
            self.hub = None
        for r in self._remotes.values():
            r.close()


#: provider_opts of the local provider: `host`, the address nodes and proxies listen on.
OPTS = ("host",)


def create(test: Mapping[str, Any], work_dir: Path) -> LocalProvider:
    """Registry entry point (see harness.providers)."""
    opts = test.get("provider_opts") or {}
    unknown = sorted(map(str, set(opts) - set(OPTS)))
    if unknown:
        raise HarnessError(f"provider_opts.{unknown[0]}: unknown local option (known: {', '.join(OPTS)})")
    host = opts.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise HarnessError(f"provider_opts.host: expected an address, got {host!r}")
    return LocalProvider(work_dir, host=host, clock=clock_asked_for(test), disks=disk.wanted(test),
                         disk_metadata=disk.metadata(test))
