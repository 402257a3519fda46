"""The `etcd` DB adapter: a real etcd 3.4 cluster (Debian's etcd-server) on the test's hosts.

etcd is found on each host's PATH or at `db_opts.binary`; `etcdctl` drives leadership and
membership. Each node keeps `{data/,etcd.log,etcd.pid}` in a directory of its own: in the
run's scratch space where the provider shares the controller's file system (NodeDirs), else
(and whenever `db_opts.dir` is set) in a private directory made afresh for the run under
`db_opts.dir` (default /tmp, see harness.remotes.private_dir), as etcd runs as root.

An etcd member advertises one peer URL that every other member dials. On a provider whose
peer links are per-link proxies (`local`), each member therefore advertises the address the
provider's `http_peer_address(node)` gives (one proxy per member that learns each connection's
sender from etcd's HTTP headers, see harness.net.etcd_proxy) and listens on its own peer port
behind it, so partitions there cut real TCP links too. Clients always talk to a member's
client port directly.

Faults that cannot be made real are refused when the config is validated (`refuse_fault`):
- clock faults: etcd is a static Go binary that reads time through the vDSO; libfaketime
  cannot reach it;
- partitions on a provider with per-link peer proxies but no `http_peer_address`: a per-link
  proxy cannot tell which link a connection to a member's one advertised URL belongs to.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkers.safety.checker import EtcdLogChecker
from harness import disk
from harness.db.etcd_client import LOG_PREFIX, EtcdClient, EtcdOpClient
from harness.db.waiting import wait_for_leader
from harness.nemesis import registry
from harness.protocols import (
    Checker,
    HarnessError,
    HttpPeerFronts,
    MessageProxies,
    NodeDirs,
    Provider,
    Remote,
    RemoteError,
)
from harness.remotes.private_dir import make_private_dir
from workloads import checkers_for

log = logging.getLogger(__name__)

#: What the corrupt fault may change in a member's data dir (etcd 3.4's layout).
ETCD_FILES = {"wal": "member/wal/*.wal", "snapshot": "member/snap/*.snap", "db": "member/snap/db"}

#: etcdctl errors after which the same command succeeds once the cluster has settled.
_TRANSIENT = ("unhealthy cluster", "leader changed", "no leader", "context deadline exceeded",
              "request timed out")


@dataclass(frozen=True)
class EtcdOptions:
    binary: str = "etcd"
    etcdctl: str = "etcdctl"
    dir: str = "/tmp"  # base of the members' private directories
    heartbeat_ms: int = 100
    election_ms: int = 1000
    #: Run etcdctl on the controller when it has one (it reaches every node and is never
    #: itself partitioned); otherwise on a node's host.
    etcdctl_on_controller: bool = True

    @classmethod
    def from_test(cls, test: Mapping[str, Any]) -> EtcdOptions:
        opts = dict(test.get("db_opts") or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(map(str, set(opts) - known))
        if unknown:
            raise HarnessError(f"db_opts.{unknown[0]}: unknown etcd option (known: {', '.join(sorted(known))})")
        for key, value in opts.items():
            want = type(getattr(cls, key))  # the default's type: str, int or bool
            ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
            if want is str:
                ok = ok and bool(value) and value.isprintable()
            elif want is int:
                ok = ok and 1 <= value <= 3_600_000
            if not ok:
                raise HarnessError(f"db_opts.{key}: expected {want.__name__}, got {value!r}"[:300])
        if not opts.get("dir", "/").startswith("/"):
            raise HarnessError(f"db_opts.dir: expected an absolute path, got {opts['dir']!r}")
        return cls(**opts)


def _url(addr: tuple[str, int]) -> str:
    return f"http://{addr[0]}:{addr[1]}"


class EtcdDB:
    """Kill, pause, leader lookup and transfer (move-leader), membership, data dirs for disk
    faults; no faked clocks and no message-level faults."""

    name = "etcd"

    def __init__(self, test: Mapping[str, Any]) -> None:
        if test.get("bugs"):
            raise HarnessError("bugs: bug switches exist only for raftkv, not etcd")
        self.opts = EtcdOptions.from_test(test)
        self.token = f"fl-{test.get('name', 'etcd')}-{test.get('seed', 0)}"
        self.provider: Provider | None = None
        self.remotes: dict[str, Remote] = {}
        self.nodes: list[str] = []
        #: Nodes believed to be members (the bootstrap set, then as changed by the adapter).
        self._members: list[str] = []
        #: Nodes whose data dir was initialised, with the --initial-cluster they used.
        self._initial: dict[str, tuple[str, str]] = {}
        self._explicit_dir = "dir" in (test.get("db_opts") or {})
        self._dirs: dict[str, str] = {}
        self._data: dict[str, str] = {}  # data dirs on faultfs (harness.disk)

    # -- paths and urls -----------------------------------------------------------------
    def _dir(self, node: str) -> str:
        d = self._dirs.get(node)
        if d is None:
            raise HarnessError(f"etcd: {node} has no directory (setup did not reach it)")
        return d

    def data_dir(self, node: str) -> str:
        """The member's --data-dir: on the node's faultfs when the run has disk faults."""
        return self._data.get(node) or f"{self._dir(node)}/data"

    def data_files(self) -> Mapping[str, str]:
        return ETCD_FILES

    def _pidfile(self, node: str) -> str:
        return f"{self._dir(node)}/etcd.pid"

    def _logfile(self, node: str) -> str:
        return f"{self._dir(node)}/etcd.log"

    def _p(self) -> Provider:
        if self.provider is None:
            raise HarnessError("etcd: used before setup")
        return self.provider

    def client_url(self, node: str) -> str:
        return _url(self._p().addresses(node).client)

    def peer_url(self, node: str) -> str:
        """The peer URL `node` advertises and the others dial (its proxy on `local`)."""
        provider = self._p()
        if isinstance(provider, HttpPeerFronts):
            return _url(provider.http_peer_address(node))
        return self.peer_listen_url(node)

    def peer_listen_url(self, node: str) -> str:
        return _url(self._p().addresses(node).peer_listen)

    # -- setup ---------------------------------------------------------------------------
    def setup(self, provider: Provider, remotes: Mapping[str, Remote], test: Mapping[str, Any]) -> None:
        self.provider = provider
        self.remotes = dict(remotes)
        self.nodes = list(remotes)
        # On providers whose hosts share the controller's file system, the node's directory
        # in the run's scratch space (removed by the runner after collecting).
        if isinstance(provider, NodeDirs) and not self._explicit_dir:
            self._dirs = {n: f"{provider.node_dir(n)}/etcd" for n in self.nodes}
        else:  # root's, since etcd runs as root
            for n in self.nodes:
                self._dirs[n] = make_private_dir(self.remotes[n], self.opts.dir, f"faultline-etcd-{n}", sudo=True)
        for n in self.nodes:
            root = disk.data_root(provider, n)
            if root is not None:
                self._data[n] = f"{root}/etcd"
        self._members = list(self.nodes)
        cluster = ",".join(f"{n}={self.peer_url(n)}" for n in self._members)
        for node in self.nodes:
            self._initial[node] = (cluster, "new")
        # All hosts at once: over SSH each command costs a round trip, and the members of a new
        # cluster wait for each other anyway.
        with ThreadPoolExecutor(max_workers=min(16, len(self.nodes))) as pool:
            for fut in [pool.submit(self._install_and_start, n) for n in self.nodes]:
                fut.result()
        log.info("etcd: started %d members in %s", len(self.nodes), ", ".join(self._dirs.values()))

    def _install_and_start(self, node: str) -> None:
        remote = self.remotes[node]
        res = remote.run([self.opts.binary, "--version"], check=False, timeout=20)
        if res.exit_code != 0:
            raise HarnessError(f"etcd: {self.opts.binary} not runnable on {node} (install etcd-server or set db_opts.binary)")
        remote.run(["mkdir", "-p", self._dir(node)], sudo=True)
        self.start(node)

    def refuse_fault(self, fault: str, provider: Provider) -> str | None:
        if registry.get(fault).moves_clocks:
            return ("etcd is a statically linked Go binary that reads time through the vDSO; "
                    "libfaketime cannot reach it")
        if fault == "partition" and isinstance(provider, MessageProxies) and not isinstance(provider, HttpPeerFronts):
            return ("etcd advertises one peer URL per member, so the provider's per-link proxies cannot "
                    "cut one link; use provider netns")
        return None

    # -- processes ----------------------------------------------------------------------
    def start(self, node: str) -> None:
        remote = self.remotes[node]
        if remote.is_running(self._pidfile(node)):
            return
        cluster, state = self._initial.get(node, (",".join(f"{n}={self.peer_url(n)}" for n in self._members), "existing"))
        client = self.client_url(node)
        argv = [
            self.opts.binary, "--name", node, "--data-dir", self.data_dir(node),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", self.peer_listen_url(node), "--initial-advertise-peer-urls", self.peer_url(node),
            "--initial-cluster", cluster, "--initial-cluster-state", state,
            "--initial-cluster-token", self.token,
            "--heartbeat-interval", str(self.opts.heartbeat_ms),
            "--election-timeout", str(self.opts.election_ms),
            "--logger", "zap", "--log-outputs", "stderr",
        ]
        remote.start_daemon(argv, pidfile=self._pidfile(node), logfile=self._logfile(node))

    def _wait_dead(self, node: str, timeout: float = 10.0) -> None:
        remote = self.remotes[node]
        deadline = time.monotonic() + timeout
        while remote.is_running(self._pidfile(node)):
            if time.monotonic() > deadline:
                raise HarnessError(f"etcd: {node} still running {timeout}s after SIGKILL")
            time.sleep(0.05)

    def kill(self, node: str) -> None:
        remote = self.remotes[node]
        remote.signal(self._pidfile(node), signal.SIGCONT)  # a paused process dies at once too
        if remote.signal(self._pidfile(node), signal.SIGKILL):
            self._wait_dead(node)

    def pause(self, node: str) -> None:
        self.remotes[node].signal(self._pidfile(node), signal.SIGSTOP)

    def resume(self, node: str) -> None:
        self.remotes[node].signal(self._pidfile(node), signal.SIGCONT)

    def stop(self, node: str, timeout: float = 10.0) -> None:
        """SIGTERM (etcd flushes and closes its WAL), SIGKILL after `timeout`."""
        remote = self.remotes[node]
        remote.signal(self._pidfile(node), signal.SIGCONT)
        if remote.signal(self._pidfile(node), signal.SIGTERM):
            deadline = time.monotonic() + timeout
            while remote.is_running(self._pidfile(node)) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.kill(node)

    def wipe(self, node: str) -> None:
        self.kill(node)
        self.remotes[node].run(["rm", "-rf", self.data_dir(node)], sudo=True)
        self._initial.pop(node, None)

    # -- etcdctl ------------------------------------------------------------------------
    def _etcdctl(self, args: Sequence[str], endpoints: Sequence[str], timeout: float = 20.0,
                 command_timeout: str = "3s") -> tuple[int, str, str]:
        argv = [self.opts.etcdctl, "--endpoints", ",".join(endpoints),
                "--dial-timeout", "1s", "--command-timeout", command_timeout, *args]
        env = {"ETCDCTL_API": "3"}
        if self.opts.etcdctl_on_controller and shutil.which(self.opts.etcdctl):
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                      env={**os.environ, **env}, check=False)
            except subprocess.TimeoutExpired as e:
                raise HarnessError(f"etcd: etcdctl {args[0]} timed out") from e
            return proc.returncode, proc.stdout, proc.stderr
        for node in self._members:
            remote = self.remotes[node]
            if remote.is_running(self._pidfile(node)):
                res = remote.run(argv, check=False, timeout=timeout, env=env)
                return res.exit_code, res.stdout, res.stderr
        raise HarnessError("etcd: no running member to run etcdctl on")

    def _etcdctl_retrying(self, args: Sequence[str], endpoints: Sequence[str], what: str,
                          timeout: float = 15.0, done_if: str | None = None) -> str:
        """Run a membership/leadership command, retrying while etcd calls the cluster unhealthy
        (it refuses reconfiguration until enough peers have been connected for a while, e.g.
        right after a heal or restart)."""
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            code, out, err = self._etcdctl(args, endpoints)
            if code == 0:
                return out
            # A retried command whose earlier attempt timed out may already have taken effect.
            if attempt > 0 and done_if is not None and done_if in err:
                return out
            attempt += 1
            transient = any(m in err for m in _TRANSIENT)
            if not transient or time.monotonic() > deadline:
                last = (err.strip().splitlines() or [f"exit {code}"])[-1]
                raise HarnessError(f"etcd: {what} failed: {last}")
            time.sleep(0.5)

    def _status(self) -> list[dict[str, Any]]:
        """`endpoint status` of every member that answers."""
        endpoints = [self.client_url(n) for n in self._members]
        # A short per-endpoint timeout: a paused member must not stall every leader lookup.
        _, out, _ = self._etcdctl(["endpoint", "status", "-w", "json"], endpoints, command_timeout="1s")
        try:
            rows = json.loads(out) if out.strip() else []
        except ValueError:
            return []
        return [r for r in rows if isinstance(r, dict) and "Status" in r]

    def _member_list(self) -> list[dict[str, Any]]:
        endpoints = [self.client_url(n) for n in self._members]
        code, out, err = self._etcdctl(["member", "list", "-w", "json"], endpoints)
        if code != 0:
            raise HarnessError(f"etcd: member list failed: {err.strip().splitlines()[-1:] or code}")
        return list(json.loads(out).get("members") or [])

    def _node_of_peer_urls(self, urls: Sequence[str]) -> str | None:
        for node in self.nodes:
            if self.peer_url(node) in urls:
                return node
        return None

    def _member_id(self, node: str) -> int:
        for m in self._member_list():
            if self._node_of_peer_urls(m.get("peerURLs") or []) == node:
                return int(m["ID"])
        raise HarnessError(f"etcd: {node} is not a member")

    def leader(self) -> str | None:
        rows = self._status()
        if not rows:
            return None
        ids = {int(r["Status"]["header"]["member_id"]): r["Endpoint"] for r in rows}
        # Of the views that name a leader, the one of the highest term wins: a deposed leader's
        # stale view must not, nor may a partitioned member that keeps campaigning (its term
        # runs ahead, but it knows no leader).
        knowing = [r for r in rows if int(r["Status"].get("leader", 0)) != 0]
        if not knowing:
            return None
        best = max(knowing, key=lambda r: int(r["Status"].get("raft_term", 0)))
        lead = int(best["Status"].get("leader", 0))
        endpoint = ids.get(lead)
        for node in self._members:
            if endpoint == self.client_url(node):
                return node
        return None

    def wait_for_cluster(self, timeout: float) -> None:
        lead = self.wait_for_leader(timeout)
        log.info("etcd cluster up: leader %s", lead)

    def wait_for_leader(self, timeout: float) -> str:
        return wait_for_leader(self.leader, timeout, "etcd: no leader")

    def members(self) -> list[str]:
        names = {self._node_of_peer_urls(m.get("peerURLs") or []) for m in self._member_list()}
        return sorted(n for n in names if n is not None)

    def transfer_leader(self, to: str) -> None:
        lead = self.leader()
        if lead is None:
            raise HarnessError("etcd: no leader to move leadership from")
        if lead == to:
            return
        target = self._member_id(to)
        self._etcdctl_retrying(["move-leader", format(target, "x")], [self.client_url(lead)],
                               f"move-leader {lead} -> {to}")

    def remove_member(self, node: str) -> None:
        target = self._member_id(node)
        others = [self.client_url(n) for n in self._members if n != node]
        self._etcdctl_retrying(["member", "remove", format(target, "x")], others, f"member remove {node}",
                               done_if="member not found")
        self._members = [n for n in self._members if n != node]
        self.wipe(node)

    def add_member(self, node: str) -> None:
        if node in self._members:
            raise HarnessError(f"etcd: {node} is already a member")
        self.wipe(node)
        endpoints = [self.client_url(n) for n in self._members]
        self._etcdctl_retrying(["member", "add", node, f"--peer-urls={self.peer_url(node)}"],
                               endpoints, f"member add {node}", done_if="Peer URLs already exists")
        self._members.append(node)
        cluster = ",".join(f"{n}={self.peer_url(n)}" for n in self._members)
        self._initial[node] = (cluster, "existing")
        self.start(node)

    # -- clients, logs, teardown --------------------------------------------------------
    def client(self, test: Mapping[str, Any]) -> EtcdOpClient:
        read = (test.get("raft") or {}).get("read_mode", "linearizable")
        if read not in ("linearizable", "serializable"):
            raise HarnessError(f"raft.read_mode: etcd has no {read!r} reads (linearizable or serializable)")
        timeout = float((test.get("workload_opts") or {}).get("timeout", 2.0))
        addrs = {n: self._p().addresses(n).client for n in self.nodes}
        return EtcdOpClient(addrs, timeout=timeout, read=read)

    def read_replicas(self, scratch: Path, timeout: float = 20.0) -> dict[str, dict[str, Any]]:
        """Each member's own copy of the log workload's keys (serializable ranges, served from
        its local state), once every member has applied up to the same revision or after
        `timeout`: {node: {"msgs": [(create revision, value)], "caught_up", "notes"}}."""
        deadline = time.monotonic() + timeout
        while True:
            revisions = {r["Endpoint"]: int(r["Status"]["header"].get("revision", 0)) for r in self._status()}
            caught_up = len(revisions) == len(self._members) and len(set(revisions.values())) == 1
            if caught_up or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        out: dict[str, dict[str, Any]] = {}
        for node in self._members:
            client = EtcdClient(self._p().addresses(node).client, timeout=5.0)
            while True:  # a member restarted by the final heal may still be starting
                res = client.log_entries(LOG_PREFIX)
                if res.status == "ok" or time.monotonic() > deadline + 10.0:
                    break
                time.sleep(0.5)
            if res.status != "ok":
                log.warning("etcd: could not read %s's copy of the log: %s", node, res.error)
                continue
            out[node] = {"msgs": [tuple(m) for m in res.value], "caught_up": caught_up,
                         "notes": [] if caught_up else [f"revisions differ: {revisions}"]}
        return out

    def collect(self, node: str, dest: Path) -> None:
        try:
            Path(dest).mkdir(parents=True, exist_ok=True)
            self.remotes[node].download(self._logfile(node), Path(dest) / "etcd.log")
        except (HarnessError, OSError, KeyError) as e:
            log.warning("etcd: could not collect the log of %s: %s", node, e)

    def checkers(self, test: Mapping[str, Any]) -> Sequence[Checker]:
        return [*checkers_for(test), EtcdLogChecker()]

    def teardown(self) -> None:
        for node, remote in self.remotes.items():
            if node not in self._dirs:
                continue  # setup failed before this node had a directory: nothing of it runs
            try:
                self.kill(node)
                # The log stays for collect(), which the runner calls after teardown.
                remote.run(["rm", "-rf", self.data_dir(node)], sudo=True, check=False)
            except (HarnessError, RemoteError) as e:
                log.warning("etcd: teardown of %s: %s", node, e)


def create(test: Mapping[str, Any]) -> EtcdDB:
    return EtcdDB(test)
