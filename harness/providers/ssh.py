"""The `ssh` provider: real hosts reached over SSH (paramiko), as Jepsen runs its tests.

Config (`provider_opts`), defaults first, then per host:
```yaml
provider_opts:
  user: root                       # sudo -n is used for root work when not root
  port: 22
  key_file: ~/.ssh/id_ed25519      # omit to use the SSH agent
  known_hosts: ~/.ssh/known_hosts
  strict_host_key_checking: true   # false is explicit and logged as a WARNING
  connect_timeout: 10
  retries: 3
  dir: /tmp                        # base of the run's private scratch dir on each host (clock logs, agent)
  ports: {peer: 7000, client: 7001, admin: 7002}
  python: python3                  # the nodes' Python: runs the clock probe when clock faults are asked
  hosts:
    n1: {hostname: 192.168.1.11}   # any default may be overridden here; `address` is the
    n2: {hostname: 192.168.1.12}   # address other nodes see, if not the hostname
```
Partitions are iptables DROP rules in a chain of our own (`faultline-in`, jumped to from INPUT),
so healing never touches the hosts' own firewall rules. Commands on all hosts run in parallel.
The clock logs and the clock agent (on the PYTHONPATH of root daemons) live in a private
directory made afresh for the run on each host under `dir` (harness.remotes.private_dir),
never at a fixed path another local user of the host could create first; it is removed at
teardown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from harness import disk
from harness.disk.remotefs import RemoteFaultfs
from harness.protocols import CommandResult, HarnessError, NodeAddresses, Remote, RemoteError
from harness.providers.clock import ClockOp, ClockState, set_ops
from harness.providers.clock import asked_for as clock_asked_for
from harness.providers.remote_clock import LIBFAKETIME_GLOB, RemoteClocks
from harness.remotes.private_dir import make_private_dir
from harness.remotes.ssh import SSHHost, SSHRemote

log = logging.getLogger(__name__)

CHAIN = "faultline-in"
T = TypeVar("T")

_HOST_FIELDS = {f.name for f in fields(SSHHost)} - {"node"}
_PROVIDER_FIELDS = {"hosts", "dir", "ports", "python"}
PORT_NAMES = ("peer", "client", "admin")


def _is_port(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535


def _text(v: Any) -> bool:
    return isinstance(v, str) and bool(v) and v.isprintable()


#: What each option must be: a test and its description for the one-line error.
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "hostname": (_text, "a host name or address"),
    "port": (_is_port, "a port (1-65535)"),
    "user": (_text, "a user name"),
    "key_file": (lambda v: v is None or _text(v), "a file name"),
    "known_hosts": (lambda v: v is None or _text(v), "a file name"),
    "strict_host_key_checking": (lambda v: isinstance(v, bool), "true or false"),
    "connect_timeout": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 600,
                        "seconds (0-600)"),
    "retries": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100, "an integer (1-100)"),
    "address": (lambda v: v is None or _text(v), "an address"),
    "dir": (lambda v: _text(v) and v.startswith("/"), "an absolute path"),
    "python": (_text, "a command"),
    "hosts": (lambda v: isinstance(v, Mapping), "a mapping of node names to hosts"),
    "ports": (lambda v: isinstance(v, Mapping) and set(v) <= set(PORT_NAMES) and all(map(_is_port, v.values())),
              f"a mapping of {', '.join(PORT_NAMES)} to ports"),
}


def _check(where: str, key: str, value: Any) -> None:
    ok, what = _CHECKS[key]
    if not ok(value):
        raise HarnessError(f"{where}.{key}: expected {what}, got {value!r}"[:300])


def check_opts(opts: Mapping[str, Any]) -> None:
    """Refuse an unknown or ill-typed option in one line naming it."""
    unknown = sorted(map(str, set(opts) - _HOST_FIELDS - _PROVIDER_FIELDS))
    if unknown:
        raise HarnessError(f"provider_opts.{unknown[0]}: unknown ssh option "
                           f"(known: {', '.join(sorted(_HOST_FIELDS | _PROVIDER_FIELDS))})")
    for key, value in opts.items():
        _check("provider_opts", key, value)


def host_configs(opts: Mapping[str, Any], nodes: Sequence[str]) -> dict[str, SSHHost]:
    """Resolve each node's SSHHost from the defaults and its `hosts.<node>` entry."""
    check_opts(opts)
    defaults = {k: v for k, v in opts.items() if k in _HOST_FIELDS}
    hosts = opts.get("hosts") or {}
    out = {}
    for node in nodes:
        entry = hosts.get(node)
        if not isinstance(entry, Mapping) or "hostname" not in entry:
            raise HarnessError(f"provider_opts.hosts.{node}: missing (needs at least hostname)")
        bad = sorted(map(str, set(entry) - _HOST_FIELDS))
        if bad:
            raise HarnessError(f"provider_opts.hosts.{node}.{bad[0]}: unknown ssh option")
        for key, value in entry.items():
            _check(f"provider_opts.hosts.{node}", key, value)
        cfg = SSHHost(node=node, **{**defaults, **entry})
        if not cfg.strict_host_key_checking:
            log.warning("ssh: provider_opts turns host key checking OFF for %s", node)
        out[node] = cfg
    return out


class SSHProvider:
    name = "ssh"

    def __init__(self, opts: Mapping[str, Any], clock: bool = False, nodes: Sequence[str] | None = None,
                 disks: bool = False, disk_metadata: str = "posix") -> None:
        check_opts(opts)
        if nodes is not None:  # known at validation: every node must have a host
            host_configs(opts, nodes)
        self.opts = dict(opts)
        #: Clock control is set up only when the test asks for clock faults: a preloaded
        #: libfaketime that misbehaves would otherwise break every run.
        self.want_clock = clock
        ports = self.opts.get("ports") or {}
        self.ports = (int(ports.get("peer", 7000)), int(ports.get("client", 7001)), int(ports.get("admin", 7002)))
        #: Base of the private scratch dir made per run on each host (clock control).
        self.base = str(self.opts.get("dir", "/tmp"))
        self.dirs: dict[str, str] = {}
        self.hosts: dict[str, SSHHost] = {}
        self.remotes: dict[str, SSHRemote] = {}
        self.supports_clock = False
        self.clocks: dict[str, RemoteClocks] = {}
        self.clock_refusal = "libfaketime (Debian package libfaketime) is missing on some hosts"
        #: the nodes' data dirs on faultfs (harness.disk), when a disk fault is asked for
        self.want_disks = disks
        self.disk_metadata = disk_metadata
        self.disks: RemoteFaultfs | None = None

    # -- parallel helpers ---------------------------------------------------------------
    def on_all(self, fn: Callable[[str, SSHRemote], T], nodes: Sequence[str] | None = None) -> dict[str, T]:
        """Run fn(node, remote) on every node at once; raise the first failure naming its host."""
        targets = list(nodes if nodes is not None else self.remotes)
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
            futures = {n: pool.submit(fn, n, self.remotes[n]) for n in targets}
        results, errors = {}, []
        for n, fut in futures.items():
            exc = fut.exception()
            if exc is None:
                results[n] = fut.result()
            else:
                errors.append(exc)
        if errors:
            first = errors[0]
            raise first if isinstance(first, HarnessError) else RemoteError(str(first))
        return results

    def run_all(self, argv: Sequence[str], **kw: Any) -> dict[str, CommandResult]:
        return self.on_all(lambda _n, r: r.run(argv, **kw))

    # -- lifecycle ----------------------------------------------------------------------
    def setup(self, nodes: Sequence[str]) -> dict[str, Remote]:
        self.hosts = host_configs(self.opts, nodes)
        self.remotes = {n: SSHRemote(cfg) for n, cfg in self.hosts.items()}
        try:
            self.on_all(lambda _n, r: r.connect())
            self.on_all(self._prepare_host)
            if self.want_disks:
                disks = self.disks = RemoteFaultfs(self.base, str(self.opts.get("python", "python3")), self.disk_metadata)
                self.on_all(disks.mount)
        except BaseException:
            self.teardown()
            raise
        self.supports_clock = len(self.clocks) == len(nodes)
        log.info("ssh: connected to %d hosts (clock control %s)", len(nodes),
                 "on" if self.supports_clock else "off")
        return dict(self.remotes)

    def _prepare_host(self, node: str, remote: SSHRemote) -> None:
        # One round trip: our own iptables chain (heal flushes it without touching the host's
        # rules), and look for libfaketime.
        script = (
            f"(iptables -w -N {CHAIN} 2>/dev/null; true) && iptables -w -F {CHAIN} && "
            f"(iptables -w -C INPUT -j {CHAIN} 2>/dev/null || iptables -w -I INPUT -j {CHAIN}) && "
            f"(ls {LIBFAKETIME_GLOB} 2>/dev/null | head -n 1)"
        )
        found = remote.run(["sh", "-c", script], sudo=True).stdout.strip()
        if found and self.want_clock:
            # root's: root daemons load the clock agent from here and follow their clock log
            base = self.dirs[node] = make_private_dir(remote, self.base, "faultline", sudo=True)
            clocks = RemoteClocks(remote, base, found, sudo=True)  # the nodes run as root
            clocks.install_shims()
            problem = clocks.probe(str(self.opts.get("python", "python3")))
            if problem is None:
                clocks.init(node)
                self.clocks[node] = clocks
            else:
                self.clock_refusal = f"{node}: {problem}"
                log.warning("ssh: clock faults unavailable: %s", self.clock_refusal)

    def teardown(self) -> None:
        """Unmount, heal, remove our chain and scratch dirs, close every connection. Never
        raises."""
        if self.disks is not None:
            self.disks.teardown()
            self.disks = None

        def clean(n: str, r: SSHRemote) -> None:
            script = (f"iptables -w -D INPUT -j {CHAIN}; iptables -w -F {CHAIN}; "
                      f'iptables -w -X {CHAIN}; [ -z "$1" ] || rm -rf -- "$1"')
            r.run(["sh", "-c", script, "sh", self.dirs.get(n, "")], sudo=True, check=False)

        live = [n for n, r in self.remotes.items() if r._client is not None]
        try:
            self.on_all(clean, live)
        except HarnessError as e:
            log.warning("ssh: teardown: %s", e)
        for remote in self.remotes.values():
            remote.close()

    # -- addresses ----------------------------------------------------------------------
    def addresses(self, node: str) -> NodeAddresses:
        cfg = self.hosts.get(node)
        if cfg is None:
            raise HarnessError(f"ssh: unknown node {node!r}")
        ip = cfg.peer_ip
        return NodeAddresses((ip, self.ports[0]), (ip, self.ports[1]), (ip, self.ports[2]))

    def peer_address(self, src: str, dst: str) -> tuple[str, int]:
        return self.addresses(dst).peer_listen

    # -- network faults -----------------------------------------------------------------
    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        for dst in grudge:
            if dst not in self.remotes:
                raise HarnessError(f"ssh: partition names unknown node {dst!r}")

        def drop(dst: str, r: SSHRemote) -> None:
            for src in sorted(set(grudge[dst]) - {dst}):
                r.run(["iptables", "-w", "-A", CHAIN, "-s", self.hosts[src].peer_ip, "-j", "DROP"], sudo=True)

        self.on_all(drop, list(grudge))

    def heal(self) -> None:
        self.run_all(["iptables", "-w", "-F", CHAIN], sudo=True)

    # -- clocks -------------------------------------------------------------------------
    def node_env(self, node: str) -> dict[str, str]:
        clocks = self.clocks.get(node)
        return {} if clocks is None else clocks.env(node)

    def _clocks(self, node: str) -> RemoteClocks:
        clocks = self.clocks.get(node)
        if clocks is None:
            raise HarnessError(f"ssh: clock faults need libfaketime on {node}: {self.clock_refusal}")
        return clocks

    def change_clock(self, node: str, ops: Sequence[ClockOp]) -> None:
        self._clocks(node).append(node, ops)

    def set_clock(self, node: str, offset_s: float, rate: float = 1.0) -> None:
        self.change_clock(node, set_ops(offset_s, rate))

    def clock_state(self, node: str) -> ClockState | None:
        return self._clocks(node).state(node)

    def collect_clock(self, node: str, dest: Path) -> None:
        clocks = self.clocks.get(node)
        if clocks is not None:
            clocks.collect(node, dest)


    # -- disks (DataDirFaults) -------------------------------------------------------------
    def disk_refusal(self) -> str | None:
        return None  # known only once connected: setup fails in one line naming the host

    def disk_root(self, node: str) -> str | None:
        return None if self.disks is None else self.disks.root(node)

    def _disks(self) -> RemoteFaultfs:
        if self.disks is None:
            raise HarnessError("ssh: no data dirs on faultfs in this run (no disk fault was asked for)")
        return self.disks

    def disk_control(self, node: str, command: str) -> dict[str, Any]:
        return self._disks().control(node, command)

    def disk_files(self, node: str, under: str) -> list[tuple[str, int]]:
        return self._disks().files(node, under)

    def disk_data_end(self, node: str, path: str) -> int:
        return self._disks().data_end(node, path)

    def disk_alter(self, node: str, path: str, flips: Sequence[tuple[int, int]] = (),
                   truncate: int | None = None) -> dict[str, Any]:
        return self._disks().alter(node, path, flips, truncate)


def create(test: Mapping[str, Any], work_dir: Path) -> SSHProvider:
    return SSHProvider(test.get("provider_opts") or {}, clock=clock_asked_for(test), nodes=test.get("nodes"),
                       disks=disk.wanted(test), disk_metadata=disk.metadata(test))
