"""The typed contracts between the harness's parts, after Jepsen's protocols.

A provider makes hosts and owns the network between them; a `Remote` runs things on one host;
a `DB` installs and drives the system under test through remotes; a `Client` performs
operations against one node; the nemesis breaks things; a `Checker` judges a stored run.

What every system under test must do is the small `DB` protocol. What only some can do is a
separate small protocol each (`Kill`, `Pause`, `LeaderLookup`, `Membership`, ...), as Jepsen
splits `Kill`, `Pause`, `Primary` and `LogFiles`; the harness asks with `isinstance`, and a
fault that needs an ability the DB or the provider lacks is refused when the config is
validated. docs/adding-a-system.md walks through them.
Implementations live in `harness.providers`, `harness.db`, `harness.nemesis` and `checkers`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from checkers.result import CheckResult
from checkers.rundata import StoredRun

if TYPE_CHECKING:
    from harness.net.linkcond import LinkConditions
    from harness.net.proxy import ProxyHub

if TYPE_CHECKING:
    from harness.providers.clock import ClockOp, ClockState


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


@runtime_checkable
class WaitableRemote(Protocol):
    """A remote that can wait for a daemon's exit without polling (its own child)."""

    def wait(self, pidfile: str, timeout: float) -> bool:
        """True once the process named by `pidfile` has exited, False after `timeout`."""
        ...


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
    #: True when the provider can change each node's clock (libfaketime usable there); known
    #: after setup (the library is probed on the hosts).
    supports_clock: bool
    #: Why clocks cannot be changed, when supports_clock is False.
    clock_refusal: str

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
        """Set node's clock to real time + offset, running at `rate` from now on. Raises
        HarnessError where the provider cannot make clock faults real."""
        ...

    def teardown(self) -> None: ...


# ---- optional abilities of a provider ------------------------------------------------------


@runtime_checkable
class NodeDirs(Protocol):
    """Hosts share the controller's file system: each node gets a scratch directory there,
    removed by the runner after logs are collected."""

    def node_dir(self, node: str) -> Path: ...


@runtime_checkable
class MessageProxies(Protocol):
    """Every directed peer link runs through a proxy the controller owns, which can drop, hold
    or strip single messages of a transport it can parse (see harness.net.msgfilter)."""

    def message_hub(self) -> ProxyHub: ...


@runtime_checkable
class HttpPeerFronts(Protocol):
    """One proxy per member for peer protocols that name their sender in HTTP headers (etcd's
    rafthttp), so a member that advertises one peer URL can still be partitioned per link."""

    def http_peer_address(self, dst: str) -> tuple[str, int]: ...


@runtime_checkable
class ClockOperations(Protocol):
    """Each node's clock takes Jepsen's clock faults one operation at a time (reset, jump, rate,
    offset; harness/providers/clock.py), applied in the node's process at once and in order,
    and says what it applied. A node that is down gets them when it starts."""

    def change_clock(self, node: str, ops: Sequence[ClockOp]) -> None: ...

    def clock_state(self, node: str) -> ClockState | None:
        """node's clock as its agent last set it; None before a node process applied any."""
        ...

    def collect_clock(self, node: str, dest: Path) -> None:
        """Copy node's clock log and what its agent applied into dest (`clock.log`,
        `clock.applied`), when clock control is on; best effort, raises HarnessError."""
        ...


@runtime_checkable
class LinkFaults(Protocol):
    """Single directed links can be degraded: delayed, made lossy, duplicating, reordering
    (harness.net.linkcond says what each means in each unit). A provider makes real what its
    network can and refuses the rest when the config is validated."""

    def link_unit(self, db: DB) -> str:
        """What a condition acts on for `db`'s peer traffic: message, byte or packet."""
        ...

    def link_refusal(self, kind: str, db: DB) -> str | None:
        """Why link faults of `kind` (delay, jitter, loss, duplicate, reorder) cannot be made
        real for `db` here (one line), or None."""
        ...

    def set_link_conditions(self, owner: str, conditions: Mapping[tuple[str, str], LinkConditions], seed: int) -> None:
        """Degrade exactly these directed links (src, dst) on behalf of `owner` (one fault);
        other owners' conditions stay and combine."""
        ...

    def clear_link_conditions(self, owner: str | None = None) -> dict[str, Any]:
        """Remove `owner`'s conditions (everyone's if None). Returns what was undone: `links`
        ([src, dst] pairs) and what the conditions did meanwhile (counters), {} if nothing."""
        ...


@runtime_checkable
class DataDirFaults(Protocol):
    """Each node's durable data can live on a faultfs (docs/faultfs.md) that the provider
    mounts on the node's host at setup, when the test asks for a disk fault: writes never
    fsynced can be dropped (a power failure), writes can fail with ENOSPC, and files can be
    changed durably while the node is down. Paths are paths on the node's host."""

    def disk_refusal(self) -> str | None:
        """Why disk faults cannot be made real here (one line: no root, no /dev/fuse, no
        fusermount3, no libfuse 3), or None. Asked when the config is validated."""
        ...

    def disk_root(self, node: str) -> str | None:
        """The node's faultfs mount point once setup mounted it; None when this run mounts
        none. The DB keeps its durable data under it (harness.disk.data_root)."""
        ...

    def disk_control(self, node: str, command: str) -> dict[str, Any]:
        """A faultfs control command on the node's mount (`lose-unsynced`, `sync-all`,
        `disk-full on|off`, `status`); its answer. HarnessError naming the node if it fails."""
        ...

    def disk_files(self, node: str, under: str) -> list[tuple[str, int]]:
        """The regular files below directory `under` (on the mount): (path relative to
        `under`, size), sorted; [] if `under` does not exist."""
        ...

    def disk_data_end(self, node: str, path: str) -> int:
        """Where file `path`'s data ends before a zero-filled tail (preallocated space)."""
        ...

    def disk_alter(self, node: str, path: str, flips: Sequence[tuple[int, int]] = (),
                   truncate: int | None = None) -> dict[str, Any]:
        """Change file `path` (on the mount) and fsync it, so that the change is durable like
        one on a real disk: XOR each (offset, mask) of `flips` into its byte, or cut the file
        to `truncate` bytes. Returns what changed: `size`, and `changes` ([{offset, before,
        after}] as hex bytes) or `truncated_to` and `bytes_removed`."""
        ...


# ---- clients ---------------------------------------------------------------------------------


@runtime_checkable
class Client(Protocol):
    """Performs one operation and returns its completion. `op` and the result are history
    dicts (see docs/architecture.md): the result's `type` is `ok` (it happened), `fail` (it
    certainly did not happen) or `info` (unknown: it may take effect later, or never)."""

    def open(self, node: str) -> None: ...

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


# ---- checkers ----------------------------------------------------------------------------------


@runtime_checkable
class Checker(Protocol):
    """Judges a stored run (its history, node logs and events). An exception raised by one
    checker becomes that checker's "unknown" verdict, never the end of the analysis."""

    name: str

    def check(self, run: StoredRun) -> CheckResult: ...


# ---- the system under test ---------------------------------------------------------------------


@runtime_checkable
class DB(Protocol):
    """What every system under test must do. Created by its plug-in's `create(test)`, which
    only reads the config (no I/O): the config validation and `faultline analyze` create one
    too."""

    name: str

    def setup(self, provider: Provider, remotes: Mapping[str, Remote], test: Mapping[str, Any]) -> None:
        """Install the system on every host and start every node."""
        ...

    def wait_for_cluster(self, timeout: float) -> None:
        """Return once the cluster serves clients (e.g. a leader is elected); HarnessError
        naming the node at fault if a node exits or nothing is ready within `timeout`."""
        ...

    def start(self, node: str) -> None:
        """Start `node` on its existing data (a no-op when it runs)."""
        ...

    def stop(self, node: str) -> None:
        """Stop `node` cleanly (its buffered logs flushed)."""
        ...

    def wipe(self, node: str) -> None:
        """Stop the node and delete its data directory."""
        ...

    def client(self, test: Mapping[str, Any]) -> Client: ...

    def collect(self, node: str, dest: Path) -> None:
        """Download the node's logs and events into `dest` (best effort, never raises)."""
        ...

    def teardown(self) -> None:
        """Stop every node; logs stay for `collect`, which the runner calls after."""
        ...

    def checkers(self, test: Mapping[str, Any]) -> Sequence[Checker]:
        """The checkers that judge this system's runs: usually the workload's (see
        `workloads.checkers_for`) and a Raft-safety checker reading this system's events."""
        ...


# ---- optional abilities of a DB -------------------------------------------------------------


@runtime_checkable
class Kill(Protocol):
    """Crash a node at once (SIGKILL); `DB.start` restarts it on its data."""

    def kill(self, node: str) -> None: ...


@runtime_checkable
class Pause(Protocol):
    """Freeze a node's processes (SIGSTOP) and let them go on (SIGCONT)."""

    def pause(self, node: str) -> None: ...

    def resume(self, node: str) -> None: ...


@runtime_checkable
class LeaderLookup(Protocol):
    """Which node leads (of the Raft group the workload uses), as the nodes report it."""

    def leader(self) -> str | None: ...


@runtime_checkable
class LeaderTransfer(Protocol):
    """Hand leadership to a chosen node (Raft's leader transfer, TimeoutNow)."""

    def transfer_leader(self, to: str) -> None: ...


@runtime_checkable
class LeaderStepDown(Protocol):
    """Ask the leader to step down, the next leader chosen by the system (NATS's stepdown)."""

    def step_down(self) -> None: ...


@runtime_checkable
class Membership(Protocol):
    """Change the voting members: remove one, add it back with an empty data directory."""

    def members(self) -> list[str]: ...

    def remove_member(self, node: str) -> None: ...

    def add_member(self, node: str) -> None:
        """Add `node` back as a voter with an empty data dir and start it (joining)."""
        ...


@runtime_checkable
class NodeStatus(Protocol):
    """A node's own view of its Raft state (role, term, voters, indexes), or None if it does
    not answer within `timeout`."""

    def status(self, node: str, timeout: float = 1.0) -> dict[str, Any] | None: ...


@runtime_checkable
class FakeableClock(Protocol):
    """The node processes run with the provider's `node_env` (libfaketime preloaded) and read
    time through libc, so the provider's clock faults reach them. Statically linked Go programs
    (etcd, nats-server) read the vDSO clock and cannot offer this."""

    def honours_node_clock(self) -> bool: ...


@runtime_checkable
class RaftkvTransport(Protocol):
    """The peer links carry raftkv's transport frames (nodes/transport.py), which the local
    provider's proxies parse to drop, hold or strip single Raft messages."""

    def peer_frames(self) -> str: ...


@runtime_checkable
class ReplicaCopies(Protocol):
    """Read each replica's own copy of the `log` workload's log at the end of a run (after
    the heal; it may stop the cluster): {node: {"msgs": [(seq, value), ...], ...}}, extra keys
    saying how it was read. `scratch` is a directory the DB may use."""

    def read_replicas(self, scratch: Path, timeout: float = 20.0) -> dict[str, dict[str, Any]]: ...


@runtime_checkable
class DataDirs(Protocol):
    """Where a node keeps its durable data, and which files in it are which, so disk faults
    can reach them. On a provider with DataDirFaults the data dir must lie under
    `harness.disk.data_root(provider, node)` when that is not None (decided in setup)."""

    def data_dir(self, node: str) -> str:
        """The node's data directory on its host (after setup)."""
        ...

    def data_files(self) -> Mapping[str, str]:
        """Kinds of file the corrupt fault may change (`wal`, `snapshot`, `blk`, ...) -> a
        glob relative to the data dir (fnmatch: `*` also matches `/`). No I/O: asked when the
        config is validated."""
        ...


@runtime_checkable
class FaultSupport(Protocol):
    """A DB's own reasons to refuse a fault that the generic abilities would allow (e.g. etcd
    partitions on a provider whose per-link proxies cannot tell etcd's links apart)."""

    def refuse_fault(self, fault: str, provider: Provider) -> str | None:
        """Why `fault` cannot be made real for this test (one line), or None."""
        ...
