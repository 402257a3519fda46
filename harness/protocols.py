"""The typed contracts between the harness's parts, after Jepsen's protocols.

A provider makes hosts and owns the network between them; a `Remote` runs things on one host;
a `DB` installs and drives the system under test through remotes; a `Client` performs
operations against one node; a `Nemesis` breaks things; a `Checker` judges a stored history.
Implementations live in `harness.providers`, `harness.db`, `harness.nemesis.core` and `checkers`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from checkers.result import CheckResult


class HarnessError(Exception):
    """A failure of the run's infrastructure (exit code 3), as opposed to a finding."""


class RemoteError(HarnessError):
    """A command on a host failed or the host could not be reached. Names the host."""


@dataclass(frozen=True)
class CommandResult:
    host: str
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def checked(self) -> CommandResult:
        """self if the command succeeded, else a one-line RemoteError: host, command (quoted
        as a shell would read it) and the last line of its stderr."""
        if self.exit_code != 0:
            last = (self.stderr.strip().splitlines() or [""])[-1]
            raise RemoteError(f"{self.host}: {shlex.join(self.argv)} exited {self.exit_code}: {last}")
        return self


@runtime_checkable
class Remote(Protocol):
    """Runs commands on one host. Commands are argv lists; an implementation that needs a shell
    (SSH) quotes every argument itself."""

    host: str

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        check: bool = True,
        timeout: float | None = 60.0,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult: ...

    def upload(self, local: Path, remote_path: str) -> None: ...

    def download(self, remote_path: str, local: Path) -> None: ...

    def start_daemon(
        self,
        argv: Sequence[str],
        *,
        pidfile: str,
        logfile: str,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> int:
        """Start a background process, record its pid in `pidfile`, send its output to
        `logfile`; return the pid."""
        ...

    def signal(self, pidfile: str, signum: int) -> bool:
        """Signal the process named by `pidfile`; False if it is not running."""
        ...

    def is_running(self, pidfile: str) -> bool: ...

    def close(self) -> None: ...


@dataclass
class NodeAddresses:
    """Where a node's services are reached from the controller (client, admin) and where it
    listens."""

    peer_listen: tuple[str, int]
    client: tuple[str, int]
    admin: tuple[str, int]


@runtime_checkable
class Provider(Protocol):
    """Creates the hosts of a test, owns the network between them, and removes it all after.

    Network faults are expressed as a grudge, as in Jepsen: `{dst: {src, ...}}` means `dst`
    drops all traffic coming from each `src`. `heal()` removes every grudge."""

    name: str
    #: True when the provider can change each node's clock (libfaketime usable there).
    supports_clock: bool

    def setup(self, nodes: Sequence[str]) -> dict[str, Remote]: ...

    def addresses(self, node: str) -> NodeAddresses: ...

    def peer_address(self, src: str, dst: str) -> tuple[str, int]:
        """The address `src` must dial to reach `dst`'s peer port (a proxy on `local`)."""
        ...

    def partition(self, grudge: Mapping[str, set[str]]) -> None: ...

    def heal(self) -> None: ...

    def node_env(self, node: str) -> dict[str, str]:
        """Environment for the node's process (e.g. libfaketime preload and control file)."""
        ...

    def set_clock(self, node: str, offset_s: float, rate: float = 1.0) -> None:
        """Set node's clock to real time + offset, running at `rate`. Raises HarnessError where
        the provider cannot make clock faults real."""
        ...

    def teardown(self) -> None: ...


@runtime_checkable
class Client(Protocol):
    """Performs one operation and returns its completion. `op` and the result are history
    dicts (see docs/architecture.md): the result's `type` is `ok`, `fail` or `info`."""

    def open(self, node: str) -> None: ...

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class DB(Protocol):
    """The system under test on a set of hosts."""

    name: str

    def setup(self, provider: Provider, remotes: Mapping[str, Remote], test: Mapping[str, Any]) -> None: ...

    def start(self, node: str) -> None: ...

    def kill(self, node: str) -> None: ...

    def pause(self, node: str) -> None: ...

    def resume(self, node: str) -> None: ...

    def wipe(self, node: str) -> None:
        """Stop the node and delete its data directory."""
        ...

    def wait_for_leader(self, timeout: float) -> str: ...

    def leader(self) -> str | None: ...

    def members(self) -> list[str]: ...

    def transfer_leader(self, to: str) -> None: ...

    def remove_member(self, node: str) -> None: ...

    def add_member(self, node: str) -> None:
        """Add `node` back as a voter with an empty data dir and start it (joining)."""
        ...

    def client(self, test: Mapping[str, Any]) -> Client: ...

    def collect(self, node: str, dest: Path) -> None:
        """Download the node's logs and events into `dest` (best effort, never raises)."""
        ...

    def teardown(self) -> None: ...


class Checker(Protocol):
    name: str

    def check(self, test: Mapping[str, Any], history: list[dict[str, Any]], run_dir: Path) -> CheckResult: ...
