"""The `nats` DB adapter: a NATS JetStream cluster (Debian's nats-server 2.9.10) on the test's
hosts, with the workload's data in a replicated KV bucket (`KV_<bucket>`) and, for the `log`
workload, a replicated stream (`FL_LOG`).

Each node keeps `<dir>/<node>/{nats.conf, store/, nats.log, nats.pid}`; nats-server runs with
debug logging (its Raft lines feed the raft-safety checker) and TZ=UTC (2.9 logs local time).
The provider's addresses map to nats-server's ports: `client` is the client port, `peer_listen`
the cluster (route) port, `admin` the HTTP monitoring port.

Partitions. Servers form a full mesh of routes, one TCP connection per pair, and do not forward
each other's traffic. Each server dials `provider.peer_address(src, dst)` for every other
server: on `local` that is the controller's proxy for the link src -> dst. But a server also
gossips the route address of every server that connects to it, and the others then dial that
address directly when they have no route to that server yet (after a restart, a heal): measured
on 2.9.10, a server killed and restarted during a cut got a direct route to the server it was
cut from, and 5 of 5 messages crossed the "partition". So on a proxied provider every server
advertises a route address nobody listens on (port 1 of its host): gossiped dials are refused
and only the proxied routes remain (measured: no direct route, 0 of 5 messages crossed). The
one connection per pair carries both directions, and whichever end's dial survived NATS's
duplicate-route check decides which of the two directed proxies it runs through, so a cut of
one direction only cannot be made real there: one-way partitions (`ring` on fewer than 5
nodes) are refused on proxied providers. On netns / ssh / docker, iptables cuts real links.

Clock faults are refused: nats-server is a static Go binary that reads the clock through the
vDSO, out of libfaketime's reach.
"""

from __future__ import annotations

import functools
import logging
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from checkers.safety.checker import NatsLogChecker
from harness import disk
from harness.db import nats_admin as admin
from harness.db.nats_admin import AdminError
from harness.db.nats_client import NatsClient, Target
from harness.db.nats_conf import (
    CLOCK_REFUSAL,
    NatsOptions,
    one_way_refusal,
    render_config,
    stream_config,
)
from harness.db.waiting import wait_for_leader
from harness.nemesis import registry
from harness.protocols import Checker, HarnessError, MessageProxies, Provider, Remote, RemoteError
from workloads import checkers_for

log = logging.getLogger(__name__)

LOG_STREAM = "FL_LOG"
LOG_SUBJECT = "fl.log"
#: What the corrupt fault may change in a server's store dir: message blocks (of the streams
#: and of the Raft groups' logs alike) and their indexes.
NATS_FILES = {"blk": "jetstream/*.blk", "idx": "jetstream/*.idx"}
#: Port nothing listens on, advertised as every server's route address on proxied providers.
DEAD_PORT = 1
_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)")
#: API errors after which the same call succeeds once the cluster has settled.
_TRANSIENT = ("temporarily unavailable", "no answer within", "no responders")


class NatsDB:
    name = "nats"

    def __init__(self, test: Mapping[str, Any]) -> None:
        self.test = test
        self.opts = NatsOptions.from_test(test)
        self._explicit_dir = "dir" in (test.get("db_opts") or {})
        self.nodes: list[str] = list(test.get("nodes") or [])
        self.provider: Provider | None = None
        self.remotes: dict[str, Remote] = {}
        self._dirs: dict[str, str] = {}
        self._data: dict[str, str] = {}  # store dirs on faultfs (harness.disk)
        self.removed: set[str] = set()
        self.target = Target(bucket=self.opts.bucket, direct=self.opts.allow_direct,
                             log_stream=LOG_STREAM, log_subject=LOG_SUBJECT)
        self.version = "unknown"

    # -- paths ----------------------------------------------------------------------------
    def _dir(self, node: str) -> str:
        return self._dirs.get(node) or f"{self.opts.dir}/{node}"

    def data_dir(self, node: str) -> str:
        """The server's JetStream store_dir: on its faultfs when the run has disk faults."""
        return self._data.get(node) or f"{self._dir(node)}/store"

    def data_files(self) -> Mapping[str, str]:
        return NATS_FILES

    def _p(self) -> Provider:
        if self.provider is None:
            raise HarnessError("nats: used before setup")
        return self.provider

    def url(self, node: str) -> str:
        host, port = self._p().addresses(node).client
        return f"nats://{host}:{port}"

    def _proxied(self) -> bool:
        p = self._p()
        return any(p.peer_address(a, b) != p.addresses(b).peer_listen
                   for a in self.nodes for b in self.nodes if a != b)

    # -- setup ----------------------------------------------------------------------------
    def setup(self, provider: Provider, remotes: Mapping[str, Remote], test: Mapping[str, Any]) -> None:
        self.provider = provider
        self.remotes = dict(remotes)
        self.nodes = list(remotes)
        node_dir = getattr(provider, "node_dir", None)
        if callable(node_dir) and not self._explicit_dir:
            self._dirs = {n: f"{node_dir(n)}/nats" for n in self.nodes}
        for n in self.nodes:
            root = disk.data_root(provider, n)
            if root is not None:
                self._data[n] = f"{root}/nats"
        self._check_binary(self.nodes[0])
        with ThreadPoolExecutor(max_workers=min(16, len(self.nodes))) as pool:
            for fut in [pool.submit(self._install, n) for n in self.nodes]:
                fut.result()
        with ThreadPoolExecutor(max_workers=min(16, len(self.nodes))) as pool:
            for fut in [pool.submit(self.start, n) for n in self.nodes]:
                fut.result()
        self._wait_meta(timeout=30.0)
        replicas = self.opts.replicas_for(len(self.nodes))
        t = self.target
        self._create_stream(stream_config(t.kv_stream, [f"$KV.{t.bucket}.>"], replicas, self.opts.storage,
                                          allow_direct=self.opts.allow_direct, kv=True))
        if test.get("workload") == "log":
            # direct gets let the final reads read each replica's own copy
            self._create_stream(stream_config(LOG_STREAM, [LOG_SUBJECT], replicas, self.opts.storage,
                                              allow_direct=True, kv=False))
        self.wait_for_leader(30.0)
        if self.opts.colocate_leaders:
            self.move_leader(self._wait_meta(10.0))
        log.info("nats: %s on %d servers, streams with %d replicas", self.version, len(self.nodes), replicas)

    def refuse_fault(self, fault: str, provider: Provider) -> str | None:
        if registry.get(fault).moves_clocks:
            return CLOCK_REFUSAL
        if fault == "partition" and isinstance(provider, MessageProxies):
            return one_way_refusal(self.test, provider.name)
        if fault == "link" and isinstance(provider, MessageProxies):
            return (f"NATS routes are one two-way connection per pair of servers, and which of the {provider.name} "
                    "provider's two directed proxies carries it depends on which end's dial survived, so a "
                    "condition on one directed link cannot be placed; use provider netns")
        return None

    def checkers(self, test: Mapping[str, Any]) -> Sequence[Checker]:
        return [*checkers_for(test), NatsLogChecker()]

    def wait_for_cluster(self, timeout: float) -> None:
        self.wait_for_leader(timeout)

    def _check_binary(self, node: str) -> None:
        res = self.remotes[node].run([self.opts.binary, "--version"], check=False, timeout=20)
        if res.exit_code != 0:
            raise HarnessError(f"nats: {self.opts.binary} not runnable on {node} (install nats-server or set db_opts.binary)")
        m = _VERSION.search(res.stdout + res.stderr)
        self.version = m.group(0) if m else (res.stdout.strip() or "unknown")
        if self.opts.sync_interval is not None and m and (int(m.group(1)), int(m.group(2))) < (2, 10):
            raise HarnessError(
                f"db_opts.sync_interval: nats-server {self.version} on {node} has no sync_interval "
                "(added in 2.10.0; 2.9 fsyncs its file store every 60 s, fixed)")

    def _config(self, node: str) -> str:
        p = self._p()
        a = p.addresses(node)
        others = [n for n in self.nodes if n != node]
        advertise = (a.peer_listen[0], DEAD_PORT) if self._proxied() else None
        return render_config(
            name=node, client=a.client, monitor=a.admin, cluster=a.peer_listen,
            routes=[p.peer_address(node, n) for n in others],
            store_dir=self.data_dir(node), opts=self.opts, advertise=advertise,
            cluster_name=f"fl-{self.test.get('seed', 0)}",
        )

    def _install(self, node: str) -> None:
        remote = self.remotes[node]
        d = self._dir(node)
        remote.run(["sh", "-c", 'rm -rf "$1" && mkdir -p "$1"', "sh", d], sudo=True)
        remote.run(["sh", "-c", 'cat > "$1"', "sh", f"{d}/nats.conf"], stdin=self._config(node).encode())
        res = remote.run([self.opts.binary, "-c", f"{d}/nats.conf", "-t"], check=False, timeout=20)
        if res.exit_code != 0:
            last = ((res.stderr + res.stdout).strip().splitlines() or [f"exit {res.exit_code}"])[-1]
            raise HarnessError(f"nats: {node}: {d}/nats.conf: {last}")

    def _create_stream(self, cfg: dict[str, Any]) -> None:
        deadline = time.monotonic() + 30.0
        while True:
            try:
                admin.call(self.url(self.nodes[0]), f"$JS.API.STREAM.CREATE.{cfg['name']}", cfg, timeout=5.0)
                return
            except AdminError as e:
                if time.monotonic() > deadline:
                    raise HarnessError(f"nats: cannot create stream {cfg['name']}: {e}") from None
                time.sleep(0.5)

    # -- processes ------------------------------------------------------------------------
    def start(self, node: str) -> None:
        remote = self.remotes[node]
        d = self._dir(node)
        if remote.is_running(f"{d}/nats.pid"):
            return
        remote.start_daemon([self.opts.binary, "-c", f"{d}/nats.conf"], pidfile=f"{d}/nats.pid",
                            logfile=f"{d}/nats.log", env={"TZ": "UTC"})

    def kill(self, node: str) -> None:
        remote = self.remotes[node]
        pidfile = f"{self._dir(node)}/nats.pid"
        remote.signal(pidfile, signal.SIGCONT)  # a paused process dies at once too
        if remote.signal(pidfile, signal.SIGKILL):
            deadline = time.monotonic() + 10.0
            while remote.is_running(pidfile):
                if time.monotonic() > deadline:
                    raise HarnessError(f"nats: {node} still running 10s after SIGKILL")
                time.sleep(0.05)

    def pause(self, node: str) -> None:
        self.remotes[node].signal(f"{self._dir(node)}/nats.pid", signal.SIGSTOP)

    def resume(self, node: str) -> None:
        self.remotes[node].signal(f"{self._dir(node)}/nats.pid", signal.SIGCONT)

    def wipe(self, node: str) -> None:
        self.kill(node)
        self.remotes[node].run(["rm", "-rf", self.data_dir(node)], sudo=True)

    # -- cluster state --------------------------------------------------------------------
    def _live(self) -> list[str]:
        return [n for n in self.nodes if n not in self.removed]

    def meta_leader(self) -> str | None:
        """The meta leader most servers name (each server's /jsz view)."""
        views = [((admin.monitor(self._p().addresses(n).admin, "/jsz") or {}).get("meta_cluster") or {}).get("leader")
                 for n in self._live()]
        named = Counter(v for v in views if v)
        return named.most_common(1)[0][0] if named else None

    def _wait_meta(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            lead = self.meta_leader()
            if lead is not None:
                return lead
            if time.monotonic() > deadline:
                raise HarnessError(f"nats: no JetStream meta leader within {timeout:g}s")
            time.sleep(0.3)

    def _stream(self) -> str:
        return LOG_STREAM if self.test.get("workload") == "log" else self.target.kv_stream

    def stream_leader(self, stream: str) -> str | None:
        """The leader most servers' STREAM.INFO answers name (a server cut off may still be
        answered by a deposed leader; the majority view wins)."""
        def ask(node: str) -> str | None:
            try:
                info = admin.call(self.url(node), f"$JS.API.STREAM.INFO.{stream}", timeout=1.0)
            except AdminError:
                return None
            lead = (info.get("cluster") or {}).get("leader")
            return lead if isinstance(lead, str) and lead in self.nodes else None

        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            views = list(pool.map(ask, self._live()))
        named = Counter(v for v in views if v)
        return named.most_common(1)[0][0] if named else None

    def leader(self) -> str | None:
        return self.stream_leader(self._stream())

    def wait_for_leader(self, timeout: float) -> str:
        return wait_for_leader(self.leader, timeout, f"nats: stream {self._stream()} has no leader", 0.3)

    def members(self) -> list[str]:
        lead = self.meta_leader()
        if lead is None:
            raise HarnessError("nats: no meta leader to ask for the members")
        jsz = admin.monitor(self._p().addresses(lead).admin, "/jsz") or {}
        mc = jsz.get("meta_cluster") or {}
        names = {lead} | {r.get("name") for r in mc.get("replicas") or []}
        return sorted(n for n in names if n in self.nodes)

    # -- leadership and membership --------------------------------------------------------
    def step_down(self) -> None:
        """`$JS.API.STREAM.LEADER.STEPDOWN` on the workload's stream: the replicas elect the
        next leader (2.9 takes no preferred peer for a stream)."""
        stream = self._stream()
        lead = self.leader()
        if lead is None:
            raise HarnessError(f"nats: stream {stream} has no leader to step down")
        url = self.url(lead)
        self._retrying(lambda: admin.call(url, f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", timeout=3.0),
                       f"step-down of {lead}")

    def move_leader(self, to: str) -> None:
        """Step the stream leader down until `to` leads (each step-down elects whichever
        replica wins; at most 8)."""
        stream = self._stream()
        moved = []
        for _ in range(8):
            lead = self.leader()
            if lead is None:
                raise HarnessError(f"nats: stream {stream} has no leader to step down")
            if lead == to:
                return
            self._retrying(functools.partial(admin.call, self.url(lead), f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}",
                                             timeout=3.0), f"step-down of {lead}")
            time.sleep(0.5)
            new = self._await_leader_change(lead, 10.0)
            moved.append(new or "none")
        raise HarnessError(f"nats: leadership of {stream} went to {', '.join(moved)}, not {to}")

    def _retrying(self, fn: Callable[[], Any], what: str, timeout: float = 8.0) -> Any:
        """Retry a JetStream API call while the cluster calls itself temporarily unavailable
        (err_code 10008: e.g. right after a leader change) or does not answer."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return fn()
            except AdminError as e:
                transient = any(m in str(e) for m in _TRANSIENT)
                if not transient or time.monotonic() > deadline:
                    raise HarnessError(f"nats: {what}: {e}") from None
            time.sleep(0.5)

    def _await_leader_change(self, old: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.leader()
            if lead is not None and lead != old:
                return lead
            time.sleep(0.2)
        return None

    def remove_member(self, node: str) -> None:
        """$JS.API.SERVER.REMOVE the server (after moving meta leadership off it: a meta
        leader that removes itself leaves the streams it replicated naming it), then stop it
        and wipe its store."""
        lead = self._wait_meta(10.0)
        if lead == node:
            self._retrying(lambda: admin.call(self.url(node), "$JS.API.META.LEADER.STEPDOWN", timeout=3.0),
                           f"meta step-down of {node}")
            lead = self._wait_meta_change(node, 15.0)
        self._retrying(lambda: admin.call(self.url(lead), "$JS.API.SERVER.REMOVE", {"peer": node}, timeout=3.0),
                       f"server remove {node}")
        self.removed.add(node)
        deadline = time.monotonic() + 15.0
        while node in self._members_or_all():
            if time.monotonic() > deadline:
                raise HarnessError(f"nats: {node} still in the meta group 15s after its removal")
            time.sleep(0.3)
        self.wipe(node)

    def _members_or_all(self) -> list[str]:
        try:
            return self.members()
        except HarnessError:
            return list(self.nodes)

    def _wait_meta_change(self, old: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.meta_leader()
            if lead is not None and lead != old:
                return lead
            time.sleep(0.3)
        raise HarnessError(f"nats: meta leadership did not leave {old} within {timeout:g}s")

    def add_member(self, node: str) -> None:
        """Start the removed server again with an empty store: it rejoins the meta group under
        its name, and streams short of replicas are placed on it again."""
        if node not in self.removed:
            raise HarnessError(f"nats: {node} is already a member")
        self.wipe(node)
        self.start(node)
        self.removed.discard(node)
        deadline = time.monotonic() + 20.0
        while node not in self._members_or_all():
            if time.monotonic() > deadline:
                raise HarnessError(f"nats: {node} did not rejoin the meta group within 20s")
            time.sleep(0.3)

    # -- clients, final reads, logs, teardown ---------------------------------------------
    def client(self, test: Mapping[str, Any]) -> NatsClient:
        timeout = float((test.get("workload_opts") or {}).get("timeout", 2.0))
        return NatsClient({n: self.url(n) for n in self.nodes}, self.target, timeout=timeout)

    def stop(self, node: str, timeout: float = 10.0) -> None:
        """SIGTERM and wait: a clean shutdown flushes the file store's write cache."""
        remote = self.remotes[node]
        pidfile = f"{self._dir(node)}/nats.pid"
        remote.signal(pidfile, signal.SIGCONT)
        if not remote.signal(pidfile, signal.SIGTERM):
            return
        deadline = time.monotonic() + timeout
        while remote.is_running(pidfile):
            if time.monotonic() > deadline:
                log.warning("nats: %s still running %gs after SIGTERM; killing it", node, timeout)
                self.kill(node)
                return
            time.sleep(0.05)

    def local_last_seq(self, node: str, stream: str) -> int | None:
        """The last sequence of `node`'s own replica of `stream` (its /jsz view), None if the
        server does not answer or holds no replica."""
        jsz = admin.monitor(self._p().addresses(node).admin, "/jsz?accounts=true&streams=true")
        for acc in (jsz or {}).get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if st.get("name") == stream:
                    return int((st.get("state") or {}).get("last_seq", 0))
        return None

    def replicas_caught_up(self, stream: str, timeout: float) -> dict[str, int | None]:
        """Wait until every live server's own replica of `stream` ends at the same sequence;
        each one's last sequence as last seen."""
        deadline = time.monotonic() + timeout
        while True:
            last = {n: self.local_last_seq(n, stream) for n in self._live()}
            if (None not in last.values() and len(set(last.values())) == 1) or time.monotonic() > deadline:
                return last
            time.sleep(0.5)

    def read_replicas(self, scratch: Path, timeout: float = 20.0) -> dict[str, dict[str, Any]]:
        """Each node's own copy of the log stream, read from its file store after the whole
        cluster has been stopped cleanly: {node: {"msgs": [(seq, value)], "last_seq_before_stop",
        "caught_up", "notes"}}. Waits up to `timeout` for the replicas to end at the same
        sequence (a follower applies an entry only once it learns it committed)."""
        from harness.db.nats_client import decode_value
        from harness.db.nats_store import block_index, read_blocks

        last = self.replicas_caught_up(LOG_STREAM, timeout)
        caught_up = None not in last.values() and len(set(last.values())) == 1
        for node in self.nodes:
            self.stop(node)
        out: dict[str, dict[str, Any]] = {}
        for node in self._live():
            remote = self.remotes[node]
            msgs_dir = f"{self.data_dir(node)}/jetstream/$G/streams/{LOG_STREAM}/msgs"
            res = remote.run(["sh", "-c", 'ls -1 "$1" 2>/dev/null || true', "sh", msgs_dir], check=False)
            blocks = []
            for name in res.stdout.split():
                if block_index(name) is None:
                    continue
                local = scratch / node / name
                local.parent.mkdir(parents=True, exist_ok=True)
                remote.download(f"{msgs_dir}/{name}", local)
                blocks.append((f"{node}:{name}", local.read_bytes()))
            msgs, notes = read_blocks(blocks)
            if not blocks:
                notes.append(f"{node}: no message blocks in {msgs_dir}")
            out[node] = {"msgs": [(m.seq, decode_value(m.data)) for m in msgs if m.subject == LOG_SUBJECT],
                         "last_seq_before_stop": last.get(node), "caught_up": caught_up,
                         "notes": notes}
        return out

    def collect(self, node: str, dest: Path) -> None:
        try:
            Path(dest).mkdir(parents=True, exist_ok=True)
            self.remotes[node].download(f"{self._dir(node)}/nats.log", Path(dest) / "nats.log")
            self.remotes[node].download(f"{self._dir(node)}/nats.conf", Path(dest) / "nats.conf")
        except (HarnessError, OSError, KeyError) as e:
            log.warning("nats: could not collect the log of %s: %s", node, e)

    def teardown(self) -> None:
        for node, remote in self.remotes.items():
            try:
                self.kill(node)
                remote.run(["rm", "-rf", self.data_dir(node)], sudo=True, check=False)
            except (HarnessError, RemoteError) as e:
                log.warning("nats: teardown of %s: %s", node, e)


def create(test: Mapping[str, Any]) -> NatsDB:
    return NatsDB(test)
