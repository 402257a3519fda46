"""The `netns` provider: one Linux network namespace per node, joined by a bridge. Needs root.

Layout of one run with id R (6 hex digits) on subnet 10.77.K.0/24:
- namespaces `fl-R-n1`.. with loopback up and `eth0` at 10.77.K.<i>;
- veth pairs whose host ends `fl-R-<i>` hang off the bridge `flbrR` (10.77.K.254 in the root
  namespace, so the controller reaches every node directly);
- an ACCEPT rule for the bridge in the root FORWARD chain, tagged with the comment `fl-R`,
  because once Docker's engine has run the FORWARD policy is DROP with bridge netfilter on;
- a marker `/run/faultline-netns/R` holding the controller's pid.

Partitions are iptables DROP rules in each grudging node's namespace, in the chain `fl-part`
(jumped to from INPUT). Link faults are random drops of the packets arriving at dst from src
(`-m statistic --mode random --probability p`) in the chain `fl-link`, removed when the fault
ends; both chains go with the namespace at teardown. That is all the link faults this kernel
allows: delay, jitter, duplication and reordering need `tc netem`, and `tc qdisc add dev lo
root netem delay 10ms` fails here with "Specified qdisc kind is unknown" (kernel 6.18 without
sch_netem; measured in a scratch namespace), so those kinds are refused on netns.
`cleanup_leftovers()` removes every `fl-` resource whose run's controller is no longer alive,
so a later run cleans up after a crashed one without disturbing a concurrent live one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import disk
from harness.disk.hostfs import HostDisks, HostFaultfs
from harness.net.linkcond import LinkConditions
from harness.protocols import DB, HarnessError, NodeAddresses, Remote
from harness.providers.clock import ClockOp, ClockState, LocalClocks, find_libfaketime, set_ops
from harness.providers.clock import asked_for as clock_asked_for
from harness.remotes.netns import NetnsRemote, pid_alive

log = logging.getLogger(__name__)

PREFIX = "fl-"
BRIDGE_PREFIX = "flbr"
MARKER_DIR = Path("/run/faultline-netns")
SUBNET_FIRST = 77  # second octet: 10.77.K.0/24 is the project's range
#: Fixed ports inside each namespace: every node has its own address.
PEER_PORT, CLIENT_PORT, ADMIN_PORT = 7000, 7001, 7002
_RUN_ID = re.compile(r"^[0-9a-f]{6}$")
#: iptables chains of our own inside each node's namespace, jumped to from INPUT in this order.
PART_CHAIN, LINK_CHAIN = "fl-part", "fl-link"
NO_NETEM = (
    "needs tc netem, which this kernel lacks (`tc qdisc add ... netem` fails: unknown qdisc kind); "
    "the netns provider can only drop packets at random (iptables statistic): use nemesis.links: [loss]"
)


def _sh(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise HarnessError(f"netns: {' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def _namespaces() -> list[str]:
    out = _sh(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _links() -> list[str]:
    out = _sh(["ip", "-o", "link", "show"], check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _forward_rules() -> list[str]:
    """Root-namespace FORWARD rules (as `-A ...` lines) tagged by any faultline run."""
    out = _sh(["iptables", "-w", "-S", "FORWARD"], check=False).stdout
    return [
        line for line in out.splitlines()
        if line.startswith("-A ") and re.search(r'--comment "?fl-[0-9a-f]{6}', line)
    ]


def _run_alive(run_id: str) -> bool:
    try:
        pid = int((MARKER_DIR / run_id).read_text().strip())
    except (OSError, ValueError):
        return False
    return pid == os.getpid() or pid_alive(pid)


def _kill_namespace(ns: str) -> None:
    """SIGKILL every process in `ns`, then delete it."""
    pids = _sh(["ip", "netns", "pids", ns], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    _sh(["ip", "netns", "del", ns], check=False)


def _delete_forward_rule(spec: str) -> None:
    """Delete a FORWARD rule given its `-A FORWARD ...` line from `iptables -S`."""
    args = spec.split()
    args[0] = "-D"
    # iptables -S quotes comments containing spaces; ours never contain spaces.
    _sh(["iptables", "-w", *[a.strip('"') for a in args]], check=False)


def cleanup_leftovers() -> list[str]:
    """Remove namespaces, links, FORWARD rules and markers of dead runs; return what went."""
    removed: list[str] = []
    for ns in _namespaces():
        m = re.match(r"^fl-([0-9a-f]{6})-", ns)
        if m and not _run_alive(m.group(1)):
            _kill_namespace(ns)
            removed.append(f"netns {ns}")
    for link in _links():
        m = re.match(r"^(?:fl-|flbr)([0-9a-f]{6})", link)
        if m and not _run_alive(m.group(1)):
            _sh(["ip", "link", "del", link], check=False)
            removed.append(f"link {link}")
    for rule in _forward_rules():
        m = re.search(r"fl-([0-9a-f]{6})", rule)
        if m and not _run_alive(m.group(1)):
            _delete_forward_rule(rule)
            removed.append(f"iptables {rule}")
    if MARKER_DIR.is_dir():
        for marker in MARKER_DIR.iterdir():
            if _RUN_ID.match(marker.name) and not _run_alive(marker.name):
                marker.unlink(missing_ok=True)
    if removed:
        log.warning("netns: removed leftovers of crashed runs: %s", ", ".join(removed))
    return removed


def _free_subnet() -> int:
    """A third octet K such that no interface here has an address in 10.77.K.0/24."""
    out = _sh(["ip", "-o", "-4", "addr", "show"], check=False).stdout
    used = {int(m) for m in re.findall(rf"inet 10\.{SUBNET_FIRST}\.(\d+)\.", out)}
    for k in range(1, 250):
        if k not in used:
            return k
    raise HarnessError("netns: no free subnet left in 10.77.0.0/16")


class NetnsProvider(HostDisks):
    name = "netns"

    def __init__(self, work_dir: Path, run_id: str | None = None, clock: bool = False, disks: bool = False,
                 disk_metadata: str = "posix") -> None:
        self.work_dir = Path(work_dir)
        self.run_id = run_id or secrets.token_hex(3)
        # The libfaketime probe costs up to a few seconds: clocks are only set up when asked.
        lib = find_libfaketime() if clock else None
        self.clocks: LocalClocks | None = None if lib is None else LocalClocks(self.work_dir / "clocks", lib)
        self.supports_clock = self.clocks is not None
        self.clock_refusal = (
            "libfaketime is not installed (Debian package libfaketime)" if clock
            else "clock faults are disabled for this run"
        )
        self.bridge = f"{BRIDGE_PREFIX}{self.run_id}"
        self.subnet = 0
        self.nodes: list[str] = []
        self.remotes: dict[str, NetnsRemote] = {}
        self._grudged: set[str] = set()
        self._forward_rule: list[str] | None = None
        #: Link-fault rules by owner: (src, dst, rule spec in dst's LINK_CHAIN).
        self._link_rules: dict[str, list[tuple[str, str, list[str]]]] = {}
        self._want_disks = disks
        self._disk_metadata = disk_metadata
        #: the nodes' data dirs on faultfs, mounted in the host's mount namespace (a mount made
        #: under `ip netns exec` is invisible to the next exec; a host mount propagates)
        self.disks: HostFaultfs | None = None

    # -- naming -------------------------------------------------------------------------
    def namespace(self, node: str) -> str:
        return f"{PREFIX}{self.run_id}-{node}"

    def ip(self, node: str) -> str:
        return f"10.{SUBNET_FIRST}.{self.subnet}.{self.nodes.index(node) + 1}"

    def node_dir(self, node: str) -> Path:
        """The node's directory on the (shared) file system: data, logs, pid files."""
        return self.work_dir / node

    @property
    def gateway_ip(self) -> str:
        return f"10.{SUBNET_FIRST}.{self.subnet}.254"

    # -- lifecycle ----------------------------------------------------------------------
    def setup(self, nodes: Sequence[str]) -> dict[str, Remote]:
        if os.geteuid() != 0:
            raise HarnessError("netns provider needs root (network namespaces, iptables)")
        if not 1 <= len(nodes) <= 200:
            raise HarnessError(f"netns: {len(nodes)} nodes; between 1 and 200 are supported")
        MARKER_DIR.mkdir(parents=True, exist_ok=True)
        self.nodes = list(nodes)
        self._setup_clock()
        # Serialise setups on this machine: two runs must not clean each other up half-made,
        # nor pick the same subnet.
        with open(MARKER_DIR / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            cleanup_leftovers()
            (MARKER_DIR / self.run_id).write_text(f"{os.getpid()}\n")
            self.subnet = _free_subnet()
            try:
                self._create_bridge()
                for i, node in enumerate(self.nodes, start=1):
                    self._create_node(i, node)
                if self._want_disks:
                    self.disks = HostFaultfs(self.work_dir, self._disk_metadata)
                    for node in self.nodes:
                        self.disks.mount(node)
            except BaseException:
                self.teardown()
                raise
        log.info(
            "netns: run %s, %d namespaces on 10.%d.%d.0/24 via bridge %s",
            self.run_id, len(nodes), SUBNET_FIRST, self.subnet, self.bridge,
        )
        return dict(self.remotes)

    def _setup_clock(self) -> None:
        """Clock faults only where libfaketime works for the node's programs (probed once)."""
        if self.clocks is None:
            return
        reason = self.clocks.probe()
        if reason is not None:
            log.warning("netns: clock faults unavailable: %s", reason)
            self.clock_refusal, self.clocks, self.supports_clock = reason, None, False

    def _create_bridge(self) -> None:
        _sh(["ip", "link", "add", self.bridge, "type", "bridge"])
        _sh(["ip", "addr", "add", f"{self.gateway_ip}/24", "dev", self.bridge])
        _sh(["ip", "link", "set", self.bridge, "up"])
        rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT",
                "-m", "comment", "--comment", f"{PREFIX}{self.run_id}"]
        _sh(["iptables", "-w", "-I", *rule])
        self._forward_rule = rule

    def _create_node(self, i: int, node: str) -> None:
        ns = self.namespace(node)
        host_end, ns_end = f"{PREFIX}{self.run_id}-{i}", f"flp{self.run_id}-{i}"
        self.node_dir(node).mkdir(parents=True, exist_ok=True)
        _sh(["ip", "netns", "add", ns])
        self.remotes[node] = NetnsRemote(node, ns)
        _sh(["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end])
        _sh(["ip", "link", "set", ns_end, "netns", ns])
        inside = ["ip", "netns", "exec", ns]
        _sh([*inside, "ip", "link", "set", "lo", "up"])
        _sh([*inside, "ip", "link", "set", ns_end, "name", "eth0"])
        _sh([*inside, "ip", "addr", "add", f"{self.ip(node)}/24", "dev", "eth0"])
        _sh([*inside, "ip", "link", "set", "eth0", "up"])
        for chain in (PART_CHAIN, LINK_CHAIN):
            _sh([*inside, "iptables", "-w", "-N", chain])
            _sh([*inside, "iptables", "-w", "-A", "INPUT", "-j", chain])
        _sh(["ip", "link", "set", host_end, "master", self.bridge])
        _sh(["ip", "link", "set", host_end, "up"])
        if self.clocks is not None:
            self.clocks.init(node)

    def teardown(self) -> None:
        """Remove every namespace, link, rule, mount and marker of this run. Never raises."""
        for node, remote in self.remotes.items():
            try:
                _kill_namespace(self.namespace(node))
                remote.reap(timeout=5.0)
            except Exception as e:  # keep tearing down the rest
                log.warning("netns: removing namespace of %s: %s", node, e)
        if self.disks is not None:  # after the nodes on them are gone
            self.disks.teardown()
            self.disks = None
        self.remotes.clear()
        for link in _links():
            if link == self.bridge or link.startswith(f"{PREFIX}{self.run_id}-"):
                _sh(["ip", "link", "del", link], check=False)
        if self._forward_rule is not None:
            _sh(["iptables", "-w", "-D", *self._forward_rule], check=False)
            self._forward_rule = None
        (MARKER_DIR / self.run_id).unlink(missing_ok=True)
        self._grudged.clear()
        self._link_rules.clear()

    # -- addresses ----------------------------------------------------------------------
    def addresses(self, node: str) -> NodeAddresses:
        if node not in self.nodes:
            raise HarnessError(f"netns: unknown node {node!r}")
        ip = self.ip(node)
        return NodeAddresses(peer_listen=(ip, PEER_PORT), client=(ip, CLIENT_PORT), admin=(ip, ADMIN_PORT))

    def peer_address(self, src: str, dst: str) -> tuple[str, int]:
        return self.addresses(dst).peer_listen

    # -- network faults -----------------------------------------------------------------
    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        """Each `dst` drops everything arriving from each `src` it holds a grudge against."""
        for dst, sources in grudge.items():
            remote = self.remotes.get(dst)
            if remote is None:
                raise HarnessError(f"netns: partition names unknown node {dst!r}")
            for src in sorted(sources):
                if src == dst:
                    continue
                remote.run(["iptables", "-w", "-A", PART_CHAIN, "-s", self.ip(src), "-j", "DROP",
                            "-m", "comment", "--comment", f"{PREFIX}{self.run_id}"])
            self._grudged.add(dst)

    def heal(self) -> None:
        for node in sorted(self._grudged):
            self.remotes[node].run(["iptables", "-w", "-F", PART_CHAIN])
        self._grudged.clear()

    # -- link faults (packet loss only) -------------------------------------------------
    def link_unit(self, db: DB) -> str:
        return "packet"

    def link_refusal(self, kind: str, db: DB) -> str | None:
        return None if kind == "loss" else NO_NETEM

    def set_link_conditions(
        self, owner: str, conditions: Mapping[tuple[str, str], LinkConditions], seed: int
    ) -> None:
        """Drop packets src -> dst at random in dst's namespace (the kernel draws, so `seed`
        plays no part); replaces `owner`'s earlier rules."""
        for cond in conditions.values():
            if cond.delay_ms or cond.jitter_ms or cond.duplicate or cond.reorder:
                raise HarnessError(f"netns: {cond.value()}: {NO_NETEM}")
        self._drop_link_rules(owner)
        rules: list[tuple[str, str, list[str]]] = []
        self._link_rules[owner] = rules
        for (src, dst), cond in sorted(conditions.items()):
            remote = self.remotes.get(dst)
            if remote is None or src not in self.nodes:
                raise HarnessError(f"netns: link fault names unknown link {src}->{dst}")
            if not cond.loss:
                continue
            spec = [LINK_CHAIN, "-s", self.ip(src), "-m", "statistic", "--mode", "random",
                    "--probability", f"{cond.loss:.6f}", "-j", "DROP",
                    "-m", "comment", "--comment", f"{PREFIX}{self.run_id}:{owner}"]  # fmt: skip
            remote.run(["iptables", "-w", "-A", *spec])
            rules.append((src, dst, spec))

    def clear_link_conditions(self, owner: str | None = None) -> dict[str, Any]:
        owners = list(self._link_rules) if owner is None else [owner]
        links: set[tuple[str, str]] = set()
        dropped = 0
        for o in owners:
            for src, dst, packets in self._drop_link_rules(o):
                links.add((src, dst))
                dropped += packets
        if owner is None:  # and anything a failed call may have left
            for remote in self.remotes.values():
                remote.run(["iptables", "-w", "-F", LINK_CHAIN], check=False)
        if not links:
            return {}
        return {"links": [list(pair) for pair in sorted(links)], "packets_dropped": dropped}

    def _drop_link_rules(self, owner: str) -> list[tuple[str, str, int]]:
        """Delete `owner`'s rules; each one's link and the packets it dropped."""
        out = []
        for src, dst, spec in self._link_rules.pop(owner, []):
            remote = self.remotes[dst]
            listing = remote.run(["iptables", "-w", "-v", "-S", LINK_CHAIN], check=False).stdout
            out.append((src, dst, _rule_packets(listing, self.ip(src), spec[-1])))
            remote.run(["iptables", "-w", "-D", *spec], check=False)
        return out

    # -- clocks -------------------------------------------------------------------------
    def node_env(self, node: str) -> dict[str, str]:
        return {} if self.clocks is None else self.clocks.env(node)

    def _clocks(self, node: str) -> LocalClocks:
        if self.clocks is None:
            raise HarnessError(f"netns: cannot change clocks: {self.clock_refusal}")
        if node not in self.nodes:
            raise HarnessError(f"netns: unknown node {node!r}")
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


def _rule_packets(listing: str, src_ip: str, comment: str) -> int:
    """Packets counted by the rule for `src_ip` tagged `comment` in an `iptables -v -S` listing."""
    for line in listing.splitlines():
        if f"-s {src_ip}/32 " in line and comment in line:
            m = re.search(r" -c (\d+) \d+", line)
            if m:
                return int(m.group(1))
    return 0


def create(test: Mapping[str, Any], work_dir: Path) -> NetnsProvider:
    unknown = sorted(map(str, test.get("provider_opts") or {}))
    if unknown:
        raise HarnessError(f"provider_opts.{unknown[0]}: unknown netns option (the netns provider has none)")
    return NetnsProvider(work_dir, clock=clock_asked_for(test), disks=disk.wanted(test),
                         disk_metadata=disk.metadata(test))
