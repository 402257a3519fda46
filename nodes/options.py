"""Command line of ``python -m nodes``: parsed and validated into a NodeConfig."""

from __future__ import annotations

import argparse
import os
import re
import stat
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from nodes.bugs import ALL_BUGS, Bugs
from nodes.fsutil import mkdir_durable
from nodes.protocol import READ_MODES

NAME = re.compile(r"^n([1-9][0-9]*)$")


class ConfigError(ValueError):
    """A bad flag value or an unusable data directory (one line, names the flag or path)."""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    raft_id: int
    data_dir: Path
    listen: tuple[str, int]
    client: tuple[str, int]
    admin: tuple[str, int]
    peers: dict[int, tuple[str, int]]
    join: bool
    election_tick: int
    heartbeat_tick: int
    tick_interval_ms: int
    pre_vote: bool
    check_quorum: bool
    read_mode: str
    bugs: Bugs
    events: Path
    log_level: str
    snapshot_count: int
    request_timeout: float
    max_size_per_msg: int = 1 << 20
    token: bytes | None = None  # the cluster's token (--token-file); None: no authentication
    drop_removed_peers: bool = True  # nodes/peerfilter.py


HOST = re.compile(r"[A-Za-z0-9._:\[\]-]{1,253}")  # a DNS name or an IPv4/IPv6 literal


def parse_addr(text: str, flag: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if (
        not sep
        or HOST.fullmatch(host) is None
        or not (port.isascii() and port.isdigit() and len(port) <= 5)
        or not 0 < int(port) < 65536
    ):
        raise ConfigError(f"{flag}: expected HOST:PORT, got {text[:80]!r}")
    return host, int(port)


MAX_RAFT_ID = (1 << 64) - 1  # Raft ids are uint64, as in etcd (nodes/raft/codec.py)


def parse_name(text: str, flag: str) -> int:
    m = NAME.fullmatch(text) if len(text) <= 21 else None
    if m is None or int(m.group(1)) > MAX_RAFT_ID:
        raise ConfigError(f"{flag}: node names are n1, n2, ... up to n{MAX_RAFT_ID} (got {text[:40]!r})")
    return int(m.group(1))


def parse_peers(text: str) -> dict[int, tuple[str, int]]:
    peers: dict[int, tuple[str, int]] = {}
    for item in filter(None, text.split(",")):
        name, sep, addr = item.partition("=")
        if not sep:
            raise ConfigError(f"--peers: expected NAME=HOST:PORT, got {item!r}")
        rid = parse_name(name.strip(), "--peers")
        if rid in peers:
            raise ConfigError(f"--peers: {name} listed twice")
        peers[rid] = parse_addr(addr.strip(), f"--peers {name}")
    if not peers:
        raise ConfigError("--peers: empty peer table")
    return peers


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help text at spaces only, so a bug name like vote-not-durable stays whole."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"raftkv: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m nodes",
        formatter_class=_HelpFormatter,
        description="raftkv: one node of a Raft key-value store (logs on stderr, nothing on stdout).",
    )
    p.add_argument("--id", required=True, help="this node's name, nK (Raft id K)")
    p.add_argument("--data-dir", required=True, help="directory for WAL, snapshots and events")
    p.add_argument("--listen", required=True, help="HOST:PORT for peer (Raft) traffic")
    p.add_argument("--client", required=True, help="HOST:PORT for the client protocol")
    p.add_argument("--admin", required=True, help="HOST:PORT for the admin HTTP API")
    p.add_argument(
        "--peers",
        required=True,
        help="n1=HOST:PORT,... addresses this node dials for every node that may be a member; "
        "the initial voters unless --join",
    )
    p.add_argument("--join", action="store_true", help="start empty as a new member of a running cluster")
    p.add_argument("--election-tick", type=int, default=10, help="ticks without a leader before campaigning")
    p.add_argument("--heartbeat-tick", type=int, default=1, help="ticks between leader heartbeats")
    p.add_argument("--tick-interval-ms", type=int, default=100, help="milliseconds per Raft tick (monotonic clock)")
    p.add_argument("--pre-vote", action=argparse.BooleanOptionalAction, default=True, help="use PreVote")
    p.add_argument(
        "--check-quorum", action=argparse.BooleanOptionalAction, default=True, help="leader steps down without a quorum"
    )
    p.add_argument("--read-mode", choices=READ_MODES, default="linearizable", help="how gets are served by default")
    p.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help="enable a seeded bug (repeatable): " + ", ".join(sorted(ALL_BUGS)),
    )
    p.add_argument("--events", default=None, help="event log path (default DATA_DIR/events.jsonl)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument(
        "--snapshot-count", type=int, default=1000, help="applied entries between automatic snapshots"
    )
    p.add_argument(
        "--request-timeout", type=float, default=1.5, help="seconds a client request may wait in the node"
    )
    p.add_argument(
        "--max-size-per-msg",
        type=int,
        default=1 << 20,
        help="bytes of entries per append message (at least one entry is always sent; 1 = one entry each)",
    )
    p.add_argument(
        "--drop-removed-peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="drop the messages of members removed from the configuration (as etcd does); "
        "--no-drop-removed-peers steps them like a member's, so a removed node's campaign can "
        "reach the voters (what the timeout-now-non-member bug needs to show)",
    )
    p.add_argument(
        "--token-file",
        default=None,
        metavar="PATH",
        help="file holding the cluster's token (mode 0600): required from admin clients "
        "(Authorization: Bearer) and, in the handshake of every peer link, from peers",
    )
    return p


MAX_TOKEN = 1024


def read_token(path: Path) -> bytes:
    """The token in `path`: one word of printable ASCII, in a file only its owner can read
    (a token on the command line would show in ps)."""
    flag = f"--token-file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise ConfigError(f"{flag}: cannot read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{flag}: not a regular file")
        if st.st_mode & 0o077:
            raise ConfigError(
                f"{flag}: readable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
            )
        raw = f.read(MAX_TOKEN + 2)
    token = raw.rstrip(b"\r\n")
    if not token:
        raise ConfigError(f"{flag}: is empty")
    if len(token) > MAX_TOKEN:
        raise ConfigError(f"{flag}: longer than {MAX_TOKEN} bytes")
    if not all(0x21 <= b <= 0x7E for b in token):
        raise ConfigError(f"{flag}: the token must be one word of printable ASCII")
    return token


def check_data_dir(path: Path) -> None:
    try:
        mkdir_durable(path)  # a power failure must not take a new data dir away
    except OSError as e:
        raise ConfigError(f"--data-dir {path}: cannot create ({e.strerror})") from e
    if not path.is_dir():
        raise ConfigError(f"--data-dir {path}: not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--data-dir {path}: not writable")


def config_from_args(ns: argparse.Namespace) -> NodeConfig:
    raft_id = parse_name(ns.id, "--id")
    peers = parse_peers(ns.peers)
    if raft_id not in peers and not ns.join:
        raise ConfigError(f"--peers: does not list this node {ns.id} (use --join for a new member)")
    if ns.election_tick <= ns.heartbeat_tick or ns.heartbeat_tick < 1:
        raise ConfigError("--election-tick must be greater than --heartbeat-tick >= 1")
    if ns.tick_interval_ms < 1:
        raise ConfigError("--tick-interval-ms must be >= 1")
    if ns.snapshot_count < 1:
        raise ConfigError("--snapshot-count must be >= 1")
    if ns.max_size_per_msg < 1:
        raise ConfigError("--max-size-per-msg must be >= 1")
    bugs = Bugs.parse(ns.bug)
    if ns.read_mode == "lease" and not ns.check_quorum and "lease-without-check-quorum" not in bugs.names:
        raise ConfigError("--read-mode lease needs --check-quorum")
    token = read_token(Path(ns.token_file)) if ns.token_file is not None else None
    data_dir = Path(ns.data_dir)
    check_data_dir(data_dir)
    return NodeConfig(
        name=ns.id,
        raft_id=raft_id,
        data_dir=data_dir,
        listen=parse_addr(ns.listen, "--listen"),
        client=parse_addr(ns.client, "--client"),
        admin=parse_addr(ns.admin, "--admin"),
        peers=peers,
        join=ns.join,
        election_tick=ns.election_tick,
        heartbeat_tick=ns.heartbeat_tick,
        tick_interval_ms=ns.tick_interval_ms,
        pre_vote=ns.pre_vote,
        check_quorum=ns.check_quorum,
        read_mode=ns.read_mode,
        bugs=bugs,
        events=Path(ns.events) if ns.events else data_dir / "events.jsonl",
        log_level=ns.log_level,
        snapshot_count=ns.snapshot_count,
        request_timeout=ns.request_timeout,
        max_size_per_msg=ns.max_size_per_msg,
        token=token,
        drop_removed_peers=ns.drop_removed_peers,
    )
