"""Clock logs on hosts the controller reaches through a `Remote` (ssh, docker).

As on the local provider (harness.providers.clock), each node runs under libfaketime and its
clock agent follows an append-only clock log; here the log, the agent's shim and its record
live on the host, written and read through the remote. Before a host's clocks are trusted, the
probe runs a node's Python there under the same environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.protocols import Remote
from harness.providers.clock import (
    COLLECTED,
    LIBFAKETIME_GLOB,
    PROBE,
    PROBE_OPS,
    PROBE_TIMEOUT,
    SHIM_DIR,
    ClockOp,
    ClockState,
    clock_env,
    log_header,
    probe_verdict,
    state_from_applied,
)

__all__ = ["LIBFAKETIME_GLOB", "RemoteClocks"]


class RemoteClocks:
    """The clock logs of the nodes on one host, under `base`/clocks; `sudo` as the nodes run."""

    def __init__(self, remote: Remote, base: str, lib: str, *, sudo: bool) -> None:
        self.remote = remote
        self.base = base
        self.lib = lib
        self.sudo = sudo
        self._headers: dict[str, str] = {}

    def log_path(self, node: str) -> str:
        return f"{self.base}/clocks/{node}.clock"

    def env(self, node: str) -> dict[str, str]:
        return clock_env(self.lib, self.log_path(node), f"{self.base}/faketime_site")

    def install_shims(self) -> None:
        """The agent and the sitecustomize that starts it, where the nodes' PYTHONPATH says."""
        for shim in sorted(SHIM_DIR.glob("*.py")):
            self.remote.upload(shim, f"{self.base}/faketime_site/{shim.name}")

    def init(self, node: str) -> None:
        """A fresh log (written then renamed: the agent never reads half a header)."""
        header = log_header()
        self.remote.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1.tmp" && mv "$1.tmp" "$1"', "sh",
                         self.log_path(node)], sudo=self.sudo, stdin=header.encode())
        self._headers[node] = header

    def append(self, node: str, ops: Sequence[ClockOp]) -> None:
        data = "".join(op.line() for op in ops).encode()
        self.remote.run(["sh", "-c", 'cat >> "$1"', "sh", self.log_path(node)], sudo=self.sudo, stdin=data)

    def state(self, node: str) -> ClockState | None:
        header = self._headers.get(node)
        if header is None:
            return None
        res = self.remote.run(["tail", "-n", "50", self.log_path(node) + ".applied"], sudo=self.sudo, check=False)
        return state_from_applied(res.stdout, header) if res.exit_code == 0 else None

    def collect(self, node: str, dest: Path) -> None:
        """Download the node's clock log and its agent's record into dest (COLLECTED names);
        a file the agent never wrote is skipped."""
        for suffix, name in COLLECTED.items():
            path = self.log_path(node) + suffix
            if self.remote.run(["sh", "-c", '[ -f "$1" ]', "sh", path], sudo=self.sudo, check=False).exit_code == 0:
                self.remote.download(path, dest / name)

    def probe(self, python: str) -> str | None:
        """None if a node's Python runs right under the library on the host, else why not."""
        self.init("probe")
        self.append("probe", PROBE_OPS)
        env = self.env("probe")
        # coreutils' timeout kills a hung probe on the host itself; libfaketime is preloaded
        # into the probe only, not into timeout.
        argv = ["timeout", "-k", "2", str(int(PROBE_TIMEOUT)), "env", *(f"{k}={v}" for k, v in env.items()),
                python, "-c", PROBE]
        try:
            res = self.remote.run(argv, timeout=PROBE_TIMEOUT + 10, check=False, sudo=self.sudo)
        finally:
            path = self.log_path("probe")
            self.remote.run(["rm", "-f", path, path + ".applied"], sudo=self.sudo, check=False)
            self._headers.pop("probe", None)
        hung = res.exit_code in (124, 137, -1)  # -1: killed by a signal (no exit status)
        return probe_verdict(None if hung else res.exit_code, res.stdout, res.stderr, self.lib)
