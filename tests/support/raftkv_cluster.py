"""A raftkv cluster of real `python -m nodes` processes on loopback, for tests and benchmarks.

Every process started is remembered and killed by close(), which fixtures call in a finalizer.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.providers import local as local_provider
from harness.providers.clock import LocalClocks
from nodes.admin_client import AdminClient, AdminError
from nodes.client import KVClient

REPO = Path(__file__).resolve().parents[2]


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1, outside the kernel's ephemeral range (the
    harness's own choice, so a node's port is not taken as a connection's source port)."""
    return local_provider.free_ports("127.0.0.1", n)


@dataclass
class Member:
    name: str
    data_dir: Path
    peer: int
    client: int
    admin: int
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


@dataclass
class Cluster:
    root: Path
    size: int = 3
    spare: int = 1  # extra names (n4, ...) listed in --peers so they can join later
    extra: list[str] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)
    token: str | None = None  # the cluster's token: passed with --token-file, sent by admin()
    #: When set, every node runs under libfaketime with its own clock log (clocks.init(name)
    #: first), as the providers start them for clock faults.
    clocks: LocalClocks | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.token is not None:
            fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.token + "\n")
            self.extra = [*self.extra, "--token-file", str(self.token_file)]
        total = self.size + self.spare
        ports = free_ports(3 * total)
        for i in range(total):
            name = f"n{i + 1}"
            self.members[name] = Member(
                name, self.root / name, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]
            )

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def initial(self) -> list[str]:
        return [f"n{i + 1}" for i in range(self.size)]

    def peers_arg(self, names: list[str]) -> str:
        return ",".join(f"{n}=127.0.0.1:{self.members[n].peer}" for n in names)

    def argv(self, name: str, join: bool = False, extra: list[str] | None = None) -> list[str]:
        m = self.members[name]
        peers = list(self.members) if join else self.initial
        argv = [
            sys.executable, "-m", "nodes",
            "--id", name,
            "--data-dir", str(m.data_dir),
            "--listen", f"127.0.0.1:{m.peer}",
            "--client", f"127.0.0.1:{m.client}",
            "--admin", f"127.0.0.1:{m.admin}",
            "--peers", self.peers_arg(peers),
        ]
        if join:
            argv.append("--join")
        return argv + self.extra + (extra or [])

    def start(
        self, name: str, join: bool = False, extra: list[str] | None = None, max_fds: int | None = None
    ) -> Member:
        """Start a node; `max_fds` caps its descriptors (RLIMIT_NOFILE) to provoke EMFILE."""
        m = self.members[name]
        m.log_path = self.root / f"{name}.log"

        def limit() -> None:
            if max_fds is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, max_fds))

        env = None
        if self.clocks is not None:
            env = {**os.environ, **self.clocks.env(name)}
            env["PYTHONPATH"] = ":".join(p for p in (env["PYTHONPATH"], os.environ.get("PYTHONPATH")) if p)
        with open(m.log_path, "ab") as logf:
            m.proc = subprocess.Popen(
                self.argv(name, join, extra),
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=logf,
                start_new_session=True,
                preexec_fn=limit if max_fds is not None else None,
                env=env,
            )
        return m

    def start_all(self) -> None:
        for n in self.initial:
            self.start(n)

    def signal(self, name: str, sig: int) -> None:
        p = self.members[name].proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, sig)

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)
        p = self.members[name].proc
        if p is not None:
            p.wait(timeout=10)

    def stop(self, name: str, timeout: float = 10.0) -> int:
        self.signal(name, signal.SIGTERM)
        p = self.members[name].proc
        assert p is not None
        return p.wait(timeout=timeout)

    def close(self) -> None:
        for m in self.members.values():
            if m.proc is not None and m.proc.poll() is None:
                m.proc.kill()
                m.proc.wait(timeout=10)

    def client(self, name: str, timeout: float = 3.0) -> KVClient:
        return KVClient(("127.0.0.1", self.members[name].client), timeout=timeout)

    def admin(self, name: str, timeout: float = 5.0) -> AdminClient:
        return AdminClient(("127.0.0.1", self.members[name].admin), timeout=timeout, token=self.token)

    def status(self, name: str) -> dict[str, Any] | None:
        try:
            return self.admin(name, timeout=1.0).status()
        except AdminError:
            return None

    def wait_leader(self, names: list[str] | None = None, timeout: float = 20.0) -> str:
        """The leader all of the given running nodes agree on."""
        names = names or self.initial
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sts = [self.status(n) for n in names]
            leads = {s["lead"] for s in sts if s is not None}
            if None not in sts and len(leads) == 1 and None not in leads:
                lead = leads.pop()
                st = self.status(lead)
                if st is not None and st["role"] == "leader":
                    return str(lead)
            time.sleep(0.1)
        raise AssertionError(f"no agreed leader among {names} within {timeout}s: {self.tail_logs()}")

    def wait_applied(self, name: str, index: int, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.status(name)
            if st is not None and st["applied"] >= index:
                return st
            time.sleep(0.1)
        raise AssertionError(f"{name} did not apply {index} within {timeout}s (status {st})")

    def events(self, name: str) -> list[dict[str, Any]]:
        path = self.members[name].data_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_event(self, name: str, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first event of name matching pred, waiting out the event log's buffering."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events(name):
                if pred(e):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: no matching event within {timeout}s")
            time.sleep(0.1)

    def tail_logs(self, lines: int = 8) -> str:
        out = []
        for m in self.members.values():
            if m.log_path is not None and m.log_path.exists():
                tail = m.log_path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {m.name}\n" + "\n".join(tail))
        return "\n".join(out)


def put_with_retry(c: KVClient, key: str, value: Any, timeout: float = 10.0) -> None:
    """A put retried only while it certainly failed (not-leader during an election)."""
    deadline = time.monotonic() + timeout
    while True:
        r = c.put(key, value)
        if r.status == "ok":
            return
        if r.status == "info" or time.monotonic() > deadline:
            raise AssertionError(f"put {key}={value}: {r}")
        time.sleep(0.1)
