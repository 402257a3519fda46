"""RaftkvDB: runs the project's own raftkv node (`python -m nodes`) on each host.

On hosts that share the controller's file system (local, netns) the node runs from this
source tree; on other hosts (ssh, docker) the `nodes` package is uploaded as an archive and
unpacked into the node's directory, so the host needs only Python 3.11. There the node's
directory is made afresh for the run under `db_opts.dir` (default /tmp) by
harness.remotes.private_dir: the node runs as root with its code there as cwd and PYTHONPATH,
so no other user of the host may have made or be able to change it. Admin operations (status,
leader transfer, membership) go through the node's admin HTTP API.

Every cluster gets a token of its own (`secrets`), uploaded to each node's directory with
mode 0600 and passed with --token-file: the nodes' admin API and peer links then refuse
whoever does not hold it (their ports are bound to host addresses on ssh, netns and docker).
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import signal
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from checkers.safety.checker import RaftkvEventsChecker
from harness import disk
from harness.db.raftkv_client import RaftkvClient
from harness.db.waiting import wait_for_leader
from harness.protocols import (
    Checker,
    HarnessError,
    NodeDirs,
    Provider,
    Remote,
    RemoteError,
    WaitableRemote,
)
from harness.remotes.private_dir import make_private_dir
from nodes.admin_client import AdminClient, AdminError
from nodes.bugs import ALL_BUGS
from workloads import checkers_for

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: db_opts for raftkv: `dir` (base of the node dirs on remote hosts), `python` (interpreter there)
DB_OPTS = ("dir", "python")
#: What the corrupt fault may change in a node's data dir (nodes/wal.py, nodes/snap.py).
RAFTKV_FILES = {"wal": "wal/wal-*.log", "snapshot": "snap/snap-*.json"}


def _addr(a: tuple[str, int]) -> str:
    return f"{a[0]}:{a[1]}"


def node_archive() -> bytes:
    """A tar.gz of the `nodes` package (all a raftkv host needs besides Python)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(REPO / "nodes", arcname="nodes", filter=lambda ti: None if "__pycache__" in ti.name else ti)
    return buf.getvalue()


class RaftkvDB:
    """Every ability of harness.protocols: kill, pause, leader lookup and transfer, membership,
    per-node status, faked clocks (a Python process under libfaketime), raftkv's transport
    frames for message-level faults, and data dirs for disk faults."""

    name = "raftkv"

    def __init__(self, test: Mapping[str, Any]) -> None:
        self.test = test
        self.raft: Mapping[str, Any] = test.get("raft") or {}
        self.bugs: list[str] = list(test.get("bugs") or [])
        unknown_bugs = [b for b in self.bugs if b not in ALL_BUGS]
        if unknown_bugs:
            raise HarnessError(f"bugs: unknown raftkv bug {unknown_bugs[0]!r} (known: {', '.join(sorted(ALL_BUGS))})")
        self.opts: Mapping[str, Any] = test.get("db_opts") or {}
        unknown = sorted(map(str, set(self.opts) - set(DB_OPTS)))
        if unknown:
            raise HarnessError(f"db_opts.{unknown[0]}: unknown raftkv option (known: {', '.join(DB_OPTS)})")
        for key, value in self.opts.items():
            if not (isinstance(value, str) and value and value.isprintable()):
                raise HarnessError(f"db_opts.{key}: expected a string, got {value!r}"[:300])
        if "dir" in self.opts and not self.opts["dir"].startswith("/"):
            raise HarnessError(f"db_opts.dir: expected an absolute path, got {self.opts['dir']!r}")
        self.nodes: list[str] = list(test["nodes"])
        self.provider: Provider | None = None
        self.remotes: Mapping[str, Remote] = {}
        self._dirs: dict[str, str] = {}
        self._data: dict[str, str] = {}  # data dirs on faultfs (harness.disk)
        self._code_dir: dict[str, str] = {}
        self._python: dict[str, str] = {}
        self.removed: set[str] = set()
        self.token = secrets.token_urlsafe(32)  # this cluster's (docs/raftkv-protocol.md)

    # ---- paths ----

    def node_dir(self, node: str) -> str:
        return self._dirs[node]

    def data_dir(self, node: str) -> str:
        """The node's --data-dir: on its faultfs when the run has disk faults, the event log
        and node log staying beside it in the node dir."""
        return self._data.get(node) or f"{self.node_dir(node)}/data"

    def data_files(self) -> Mapping[str, str]:
        return RAFTKV_FILES

    def _paths(self, node: str) -> dict[str, str]:
        d = self.node_dir(node)
        return {
            "data": self.data_dir(node),
            "log": f"{d}/node.log",
            "pid": f"{d}/node.pid",
            "events": f"{d}/events.jsonl",  # outside data/, so a wipe keeps the record
            "secret": f"{d}/secret",  # mode 0700
            "token": f"{d}/secret/token",  # mode 0600
        }

    def _admin(self, node: str, timeout: float = 2.0) -> AdminClient:
        assert self.provider is not None
        return AdminClient(self.provider.addresses(node).admin, timeout=timeout, token=self.token)

    def _upload_token(self, node: str, r: Remote) -> None:
        """The token, readable by the node's user only, never on a command line: in a 0700
        directory, as a 0600 file (every remote's upload keeps the mode; node images have
        mkdir but no chmod)."""
        p = self._paths(node)
        r.run(["mkdir", "-p", "-m", "700", p["secret"]])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "token"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.token + "\n")
            r.upload(path, p["token"])

    # ---- lifecycle ----

    def setup(self, provider: Provider, remotes: Mapping[str, Remote], test: Mapping[str, Any]) -> None:
        self.provider = provider
        self.remotes = remotes
        # Hosts that share this machine's file system run the node from this source tree.
        shared = isinstance(provider, NodeDirs)
        base = str(self.opts.get("dir", "/tmp"))
        archive = None if shared else node_archive()
        for node in self.nodes:
            r = remotes[node]
            if isinstance(provider, NodeDirs):
                self._dirs[node] = str(provider.node_dir(node))
                r.run(["mkdir", "-p", self._dirs[node]])
            else:
                self._dirs[node] = make_private_dir(r, base, f"faultline-raftkv-{node}")
            root = disk.data_root(provider, node)
            if root is not None:
                self._data[node] = f"{root}/data"
            self._upload_token(node, r)
            if shared:
                self._code_dir[node] = str(REPO)
                self._python[node] = str(self.opts.get("python", sys.executable))
            else:
                assert archive is not None
                code = f"{self._dirs[node]}/code"
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "nodes.tar.gz"
                    path.write_bytes(archive)
                    r.upload(path, f"{self._dirs[node]}/nodes.tar.gz")
                r.run(["mkdir", "-p", code])
                r.run(["tar", "-xzf", f"{self._dirs[node]}/nodes.tar.gz", "-C", code])
                self._code_dir[node] = code
                self._python[node] = str(self.opts.get("python", "python3"))
        for node in self.nodes:
            self.start(node)

    def wait_for_cluster(self, timeout: float) -> None:
        leader = self.wait_for_leader(timeout, startup=True)
        log.info("raftkv cluster up: leader %s", leader)

    def argv(self, node: str, join: bool = False) -> list[str]:
        assert self.provider is not None
        a = self.provider.addresses(node)
        p = self._paths(node)
        peers = ",".join(f"{n}={_addr(self.provider.peer_address(node, n))}" for n in self.nodes)
        argv = [
            self._python[node], "-m", "nodes",
            "--id", node,
            "--data-dir", p["data"],
            "--listen", _addr(a.peer_listen),
            "--client", _addr(a.client),
            "--admin", _addr(a.admin),
            "--peers", peers,
            "--events", p["events"],
            "--election-tick", str(self.raft.get("election_tick", 10)),
            "--heartbeat-tick", str(self.raft.get("heartbeat_tick", 1)),
            "--tick-interval-ms", str(self.raft.get("tick_interval_ms", 100)),
            "--pre-vote" if self.raft.get("pre_vote", True) else "--no-pre-vote",
            "--check-quorum" if self.raft.get("check_quorum", True) else "--no-check-quorum",
            "--read-mode", str(self.raft.get("read_mode", "linearizable")),
            "--max-size-per-msg", str(self.raft.get("max_size_per_msg", 1 << 20)),
            "--drop-removed-peers" if self.raft.get("drop_removed_peers", True) else "--no-drop-removed-peers",
            "--snapshot-count", str(self.raft.get("snapshot_count", 1000)),
            "--token-file", p["token"],
        ]  # fmt: skip
        for bug in self.bugs:
            argv += ["--bug", bug]
        if join:
            argv.append("--join")
        return argv

    def start(self, node: str, join: bool = False) -> None:
        assert self.provider is not None
        r = self.remotes[node]
        p = self._paths(node)
        if r.is_running(p["pid"]):
            return
        env = dict(self.provider.node_env(node))
        # the node's code first; a provider may add its own entries (the faketime shim)
        env["PYTHONPATH"] = ":".join(p for p in (self._code_dir[node], env.get("PYTHONPATH")) if p)
        pid = r.start_daemon(self.argv(node, join), pidfile=p["pid"], logfile=p["log"], env=env, cwd=self._code_dir[node])
        log.info("%s: started raftkv pid %d%s", node, pid, " (joining)" if join else "")

    def _wait_exit(self, node: str, timeout: float) -> bool:
        r = self.remotes[node]
        if isinstance(r, WaitableRemote):
            return r.wait(self._paths(node)["pid"], timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not r.is_running(self._paths(node)["pid"]):
                return True
            time.sleep(0.05)
        return False

    def kill(self, node: str) -> None:
        pid = self._paths(node)["pid"]
        if self.remotes[node].signal(pid, signal.SIGKILL):
            self._wait_exit(node, 5.0)
            log.info("%s: killed", node)

    def stop(self, node: str, timeout: float = 5.0) -> None:
        """Clean shutdown (SIGTERM), SIGKILL after `timeout`."""
        r = self.remotes[node]
        pid = self._paths(node)["pid"]
        r.signal(pid, signal.SIGCONT)  # a paused node cannot handle SIGTERM
        if r.signal(pid, signal.SIGTERM) and not self._wait_exit(node, timeout):
            log.warning("%s: no exit %.0fs after SIGTERM; SIGKILL", node, timeout)
            self.kill(node)

    def pause(self, node: str) -> None:
        self.remotes[node].signal(self._paths(node)["pid"], signal.SIGSTOP)

    def resume(self, node: str) -> None:
        self.remotes[node].signal(self._paths(node)["pid"], signal.SIGCONT)

    def wipe(self, node: str) -> None:
        self.kill(node)
        # daemons run as root on hosts reached as a sudo user, so their data is root's
        self.remotes[node].run(["rm", "-rf", self._paths(node)["data"]], sudo=True)

    def is_running(self, node: str) -> bool:
        return self.remotes[node].is_running(self._paths(node)["pid"])

    # ---- cluster state through the admin API ----

    def status(self, node: str, timeout: float = 1.0) -> dict[str, Any] | None:
        try:
            return self._admin(node, timeout).status()
        except AdminError:
            return None

    def leader(self) -> str | None:
        """The leader of the highest term that a node reports as its own role."""
        best: tuple[int, str] | None = None
        for node in self.nodes:
            if node in self.removed:
                continue
            st = self.status(node, timeout=1.0)  # a busy machine answers slower than 0.5 s
            if st and st.get("role") == "leader":
                term = int(st.get("term", 0))
                if best is None or term > best[0]:
                    best = (term, node)
        return None if best is None else best[1]

    def wait_for_leader(self, timeout: float, startup: bool = False) -> str:
        """The leader's name; at startup a node process that exits is an error at once."""

        def exited() -> None:
            for node in self.nodes:
                if not self.is_running(node):
                    raise HarnessError(f"raftkv: {node} exited at startup: {self._last_log_line(node)}")

        return wait_for_leader(self.leader, timeout, "raftkv: no leader elected", 0.1, exited if startup else None)

    def _last_log_line(self, node: str) -> str:
        try:
            res = self.remotes[node].run(["tail", "-n", "1", self._paths(node)["log"]], check=False, timeout=10)
        except RemoteError as e:
            return f"(log unreadable: {e})"
        return res.stdout.strip() or "(empty log)"

    def members(self) -> list[str]:
        lead = self.leader()
        st = self.status(lead) if lead else None
        if not st:
            raise HarnessError("raftkv: membership unknown (no leader)")
        return sorted(str(v) for v in st.get("voters", []))

    def _leader_admin(self) -> tuple[str, AdminClient]:
        lead = self.leader()
        if lead is None:
            raise HarnessError("raftkv: no leader to ask")
        return lead, self._admin(lead, timeout=5.0)

    def transfer_leader(self, to: str) -> None:
        lead, admin = self._leader_admin()
        if lead == to:
            return
        try:
            admin.transfer_leader(to)
        except AdminError as e:
            raise HarnessError(f"raftkv: transfer {lead} -> {to}: {e}") from None

    def remove_member(self, node: str) -> None:
        _, admin = self._leader_admin()
        try:
            admin.remove_member(node)
        except AdminError as e:
            raise HarnessError(f"raftkv: remove {node}: {e}") from None
        self.removed.add(node)
        self.kill(node)  # a removed member must not stand as a candidate forever

    def add_member(self, node: str) -> None:
        self.wipe(node)
        _, admin = self._leader_admin()
        try:
            admin.add_member(node)
        except AdminError as e:
            raise HarnessError(f"raftkv: add {node}: {e}") from None
        self.removed.discard(node)
        self.start(node, join=True)

    # ---- abilities: clocks and message-level faults ----

    def honours_node_clock(self) -> bool:
        return True  # a Python process: libfaketime in the provider's node_env reaches it

    def peer_frames(self) -> str:
        return "raftkv"

    # ---- clients, logs, checkers, teardown ----

    def client(self, test: Mapping[str, Any]) -> RaftkvClient:
        assert self.provider is not None
        timeout = float((test.get("workload_opts") or {}).get("timeout", 2.0))
        return RaftkvClient(self.provider, timeout=timeout)

    def collect(self, node: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        p = self._paths(node) if node in self._dirs else {}
        for key, name in (("log", "node.log"), ("events", "events.jsonl")):
            if key not in p:
                continue
            try:
                self.remotes[node].download(p[key], dest / name)
            except (RemoteError, OSError) as e:
                log.warning("%s: could not collect %s: %s", node, name, e)

    def checkers(self, test: Mapping[str, Any]) -> Sequence[Checker]:
        return [*checkers_for(test), RaftkvEventsChecker()]

    def teardown(self) -> None:
        for node in self._dirs:
            try:
                self.stop(node)
            except (RemoteError, OSError) as e:
                log.warning("%s: stop failed: %s", node, e)


def create(test: Mapping[str, Any]) -> RaftkvDB:
    """Registry entry point (see harness.db)."""
    return RaftkvDB(test)
