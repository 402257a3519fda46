"""A faultline plug-in that lives outside faultline: the `toykv` single-server key-value store.

Name it in a config as `db: toykv_plugin` with this folder on PYTHONPATH. It implements the
core `DB` protocol and one ability, `Kill`; every other fault is refused when the config is
validated. `db_opts.durable: false` keeps toykv's state in memory only, so a crash loses
acknowledged writes, and faultline's linearizability checker should say so.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.protocols import Checker, HarnessError, NodeDirs, Provider, Remote
from workloads import checkers_for

SERVER = Path(__file__).resolve().parent / "toykv_server.py"


class ToyClient:
    """One TCP connection to a node; a timeout or a broken connection is `info` (the op may
    have been applied), a refused connection is `fail` (nothing was sent)."""

    def __init__(self, addrs: Mapping[str, tuple[str, int]], timeout: float) -> None:
        self.addrs, self.timeout = addrs, timeout
        self.sock: socket.socket | None = None
        self.rfile: Any = None

    def open(self, node: str) -> None:
        self.close()
        try:
            self.sock = socket.create_connection(self.addrs[node], timeout=self.timeout)
            self.rfile = self.sock.makefile("rb")
        except OSError:
            self.sock = None

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]:
        if self.sock is None:
            return {"type": "fail", "error": "not connected"}
        req = {"f": op["f"], "key": op.get("key", "r"), "value": op.get("value")}
        try:
            self.sock.sendall((json.dumps(req) + "\n").encode())
            line = self.rfile.readline()
        except OSError as e:
            return {"type": "info", "error": f"{type(e).__name__}: {e}"}
        if not line:
            return {"type": "info", "error": "connection closed"}
        return dict(json.loads(line))

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class ToyKV:
    name = "toykv"

    def __init__(self, test: Mapping[str, Any]) -> None:
        opts = dict(test.get("db_opts") or {})
        unknown = sorted(set(opts) - {"durable"})
        if unknown:
            raise HarnessError(f"db_opts.{unknown[0]}: unknown toykv option (known: durable)")
        self.durable = bool(opts.get("durable", True))
        self.provider: Provider | None = None
        self.remotes: Mapping[str, Remote] = {}
        self.dirs: dict[str, str] = {}

    def setup(self, provider: Provider, remotes: Mapping[str, Remote], test: Mapping[str, Any]) -> None:
        if not isinstance(provider, NodeDirs):
            raise HarnessError(f"toykv: needs a provider with node dirs on this machine, not {provider.name}")
        self.provider, self.remotes = provider, remotes
        for node in remotes:
            self.dirs[node] = str(provider.node_dir(node))
            self.start(node)

    def wait_for_cluster(self, timeout: float) -> None:
        assert self.provider is not None
        deadline = time.monotonic() + timeout
        for node in self.remotes:
            while True:
                try:
                    socket.create_connection(self.provider.addresses(node).client, timeout=1).close()
                    break
                except OSError as e:
                    if time.monotonic() > deadline:
                        raise HarnessError(f"toykv: {node} does not answer: {e}") from None
                    time.sleep(0.05)

    def start(self, node: str) -> None:
        assert self.provider is not None
        host, port = self.provider.addresses(node).client
        d = self.dirs[node]
        if self.remotes[node].is_running(f"{d}/toykv.pid"):
            return
        argv = [sys.executable, str(SERVER), "--listen", f"{host}:{port}"]
        if self.durable:
            argv += ["--log", f"{d}/toykv.log"]
        self.remotes[node].start_daemon(argv, pidfile=f"{d}/toykv.pid", logfile=f"{d}/server.out")

    def kill(self, node: str) -> None:
        pidfile = f"{self.dirs[node]}/toykv.pid"
        if self.remotes[node].signal(pidfile, signal.SIGKILL):
            while self.remotes[node].is_running(pidfile):
                time.sleep(0.01)

    def stop(self, node: str) -> None:
        self.kill(node)  # nothing to flush: every change is fsynced before its reply

    def wipe(self, node: str) -> None:
        self.kill(node)
        Path(f"{self.dirs[node]}/toykv.log").unlink(missing_ok=True)

    def client(self, test: Mapping[str, Any]) -> ToyClient:
        assert self.provider is not None
        timeout = float((test.get("workload_opts") or {}).get("timeout", 2.0))
        return ToyClient({n: self.provider.addresses(n).client for n in self.remotes}, timeout)

    def collect(self, node: str, dest: Path) -> None:
        try:
            dest.mkdir(parents=True, exist_ok=True)
            self.remotes[node].download(f"{self.dirs[node]}/server.out", dest / "server.out")
        except (HarnessError, OSError, KeyError):
            pass  # best effort: a node that never started has no output

    def teardown(self) -> None:
        for node in self.dirs:
            self.kill(node)

    def checkers(self, test: Mapping[str, Any]) -> Sequence[Checker]:
        return checkers_for(test)  # not a Raft system: linearizability only


def create(test: Mapping[str, Any]) -> ToyKV:
    return ToyKV(test)
