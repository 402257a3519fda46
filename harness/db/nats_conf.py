"""db_opts of the `nats` DB and the nats-server configuration file they become.

The options that matter for safety are fields here, and so are recorded in test.yaml:
`replicas` (of the KV bucket's and the log's streams), `allow_direct` (KV reads served by any
replica, which may be stale, instead of by the stream leader) and `sync_interval` (how often
the file store fsyncs; "always" = every write). Debian's nats-server 2.9.10 has no
`sync_interval` option (it came with 2.10.0; 2.9 syncs every 60 s, fixed): setting it is
refused at setup with the version found, rather than silently ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from harness.protocols import HarnessError

#: nats-server's maximum stream replication.
MAX_REPLICAS = 5
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_DURATION = re.compile(r"^\d+(ms|s|m|h)$")


@dataclass(frozen=True)
class NatsOptions:
    binary: str = "nats-server"
    #: node directories on hosts that do not share the controller's file system
    dir: str = "/tmp/faultline-nats"
    #: replicas of the bucket's and the log's streams (default: every node, at most 5)
    replicas: int | None = None
    #: serve KV reads from any replica ($JS.API.DIRECT.GET) instead of the stream leader
    allow_direct: bool = False
    #: file store sync: null = the server's default, "always", or a duration like "2m"
    sync_interval: str | None = None
    bucket: str = "fl"
    storage: str = "file"
    #: nats-server debug logging: the raft-safety checker reads its Raft lines
    debug: bool = True
    #: after set-up, move the stream's leadership to the meta leader's server (a state a small
    #: cluster often reaches by itself; a server leading both keeps serving reads when cut off)
    colocate_leaders: bool = False

    @classmethod
    def from_test(cls, test: Mapping[str, Any]) -> NatsOptions:
        raw = dict(test.get("db_opts") or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise HarnessError(f"db_opts.{unknown[0]}: unknown nats option (known: {', '.join(sorted(known))})")
        if "dir" not in raw:
            raw["dir"] = f"/tmp/faultline-nats/{test.get('name', 'nats')}-{test.get('seed', 0)}"
        opts = cls(**raw)
        opts.validate(len(test.get("nodes") or []))
        return opts

    def validate(self, nodes: int) -> None:
        r = self.replicas
        if r is not None and (not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= min(MAX_REPLICAS, max(nodes, 1))):
            raise HarnessError(f"db_opts.replicas: {r!r} is not an integer from 1 to {min(MAX_REPLICAS, max(nodes, 1))}")
        if not isinstance(self.allow_direct, bool):
            raise HarnessError(f"db_opts.allow_direct: expected true or false, got {self.allow_direct!r}")
        for name in ("debug", "colocate_leaders"):
            if not isinstance(getattr(self, name), bool):
                raise HarnessError(f"db_opts.{name}: expected true or false, got {getattr(self, name)!r}")
        s = self.sync_interval
        if s is not None and (not isinstance(s, str) or (s != "always" and not _DURATION.match(s))):
            raise HarnessError(f"db_opts.sync_interval: {s!r} is not \"always\" or a duration like \"2m\"")
        if not isinstance(self.bucket, str) or not _NAME.match(self.bucket):
            raise HarnessError(f"db_opts.bucket: {self.bucket!r} is not a bucket name (letters, digits, _ and -)")
        if self.storage not in ("file", "memory"):
            raise HarnessError(f"db_opts.storage: {self.storage!r} is not file or memory")

    def replicas_for(self, nodes: int) -> int:
        return self.replicas if self.replicas is not None else min(nodes, MAX_REPLICAS)


def _q(value: str) -> str:
    """A quoted string in nats-server's config syntax (JSON string escapes are accepted)."""
    return json.dumps(value)


def render_config(
    *,
    name: str,
    client: tuple[str, int],
    monitor: tuple[str, int],
    cluster: tuple[str, int],
    routes: Sequence[tuple[str, int]],
    store_dir: str,
    opts: NatsOptions,
    advertise: tuple[str, int] | None = None,
    cluster_name: str = "faultline",
) -> str:
    """One server's config file. `routes` are the addresses it dials for each other server
    (a per-link proxy on `local`); `advertise` replaces the route address it gossips to the
    others (see NatsDB: an address nobody listens on keeps servers off gossiped direct routes)."""
    js = [f"store_dir: {_q(store_dir)}"]
    if opts.sync_interval is not None:
        js.append(f"sync_interval: {_q(opts.sync_interval)}")
    cl = [
        f"name: {_q(cluster_name)}",
        f"listen: {_q(f'{cluster[0]}:{cluster[1]}')}",
        "routes: [" + ", ".join(_q(f"nats-route://{h}:{p}") for h, p in routes) + "]",
    ]
    if advertise is not None:
        cl.append(f"advertise: {_q(f'{advertise[0]}:{advertise[1]}')}")
    lines = [
        f"server_name: {_q(name)}",
        f"listen: {_q(f'{client[0]}:{client[1]}')}",
        f"http: {_q(f'{monitor[0]}:{monitor[1]}')}",
        f"debug: {'true' if opts.debug else 'false'}",
        "logtime: true",
        "jetstream {",
        *(f"  {x}" for x in js),
        "}",
        "cluster {",
        *(f"  {x}" for x in cl),
        "}",
    ]
    return "\n".join(lines) + "\n"


def stream_config(name: str, subjects: list[str], replicas: int, storage: str, *,
                  allow_direct: bool, kv: bool) -> dict[str, Any]:
    """A stream's config for `$JS.API.STREAM.CREATE`. A KV bucket's stream keeps one message
    per key (history 1), takes delete markers and rollups, and denies message deletes, as
    `nats kv add` makes them."""
    cfg: dict[str, Any] = {
        "name": name, "subjects": subjects, "num_replicas": replicas, "storage": storage,
        "retention": "limits", "discard": "old", "allow_direct": allow_direct,
        "max_msgs": -1, "max_bytes": -1, "max_age": 0, "max_msg_size": -1, "max_consumers": -1,
        "duplicate_window": 120_000_000_000,
    }
    if kv:
        cfg.update({"max_msgs_per_subject": 1, "allow_rollup_hdrs": True, "deny_delete": True,
                    "discard": "new"})
    return cfg


#: Why clock faults cannot be made real for nats-server.
CLOCK_REFUSAL = ("nats-server is a statically linked Go binary that reads time through the vDSO; "
                 "libfaketime cannot reach it")


def one_way_refusal(test: Mapping[str, Any], provider_name: str) -> str | None:
    """Why this test's partitions cannot be made real on a provider whose per-link proxies
    carry NATS's routes (one line), or None."""
    nem = test.get("nemesis") or {}
    if "ring" in (nem.get("partitions") or []) and len(test.get("nodes") or []) < 5:
        return ("ring partitions on fewer than 5 nodes cut links one way only, which the "
                f"{provider_name} provider's per-link proxies cannot make real for NATS's two-way "
                "route connections; use 5 nodes or provider netns")
    return None
