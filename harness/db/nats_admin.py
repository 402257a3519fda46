"""Controller-side calls of the JetStream API and the monitoring port, for the `nats` DB.

Every call opens its own short-lived connection to one server (the nemesis and the runner call
the DB from different threads, and a connection must never outlive a fault that cuts it).
What 2.9.10 answers (seen on a 3-node cluster):
- `$JS.API.STREAM.INFO.<s>`: answered by the stream's leader; `cluster.leader` names it.
- `$JS.API.STREAM.LEADER.STEPDOWN.<s>`: `{"success": true}`; 2.9 takes no preferred peer, the
  new leader is whichever replica wins the election.
- `$JS.API.META.LEADER.STEPDOWN`: `{"success": true}`; the meta leader moves.
- `$JS.API.SERVER.REMOVE {"peer": <server name>}`: answered by the meta leader; the server
  leaves the meta group and the streams it replicated (re-placed where a spare server exists,
  else shrunk to the remaining replicas); the removed server disables JetStream. Started again
  with an empty store under the same name, it rejoins the meta group and under-replicated
  streams are placed on it again.
- `/jsz` on the monitoring port: `meta_cluster` with the meta leader and, on the leader, the
  other peers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
import nats.errors

log = logging.getLogger(__name__)

T = TypeVar("T")


class AdminError(Exception):
    """A JetStream API call that failed (no answer, an error reply); message says which."""


def run_on(url: str, fn: Callable[[Any], Awaitable[T]], timeout: float = 3.0) -> T:
    """Connect to `url`, run `fn(nc)`, close; AdminError if the server cannot be reached."""

    async def main() -> T:
        async def quiet(_: Exception) -> None:
            return None

        try:
            nc = await asyncio.wait_for(nats.connect(
                url, allow_reconnect=False, connect_timeout=max(1, int(timeout)),
                max_reconnect_attempts=0, error_cb=quiet), timeout)
        except (TimeoutError, OSError, nats.errors.Error) as e:
            raise AdminError(f"cannot connect to {url}: {type(e).__name__}") from None
        try:
            return await fn(nc)
        finally:
            try:
                await asyncio.wait_for(nc.close(), 2.0)
            except (TimeoutError, nats.errors.Error, OSError):
                pass

    return asyncio.run(main())


async def _request(nc: Any, subject: str, payload: bytes, timeout: float, what: str,
                   no_responders: str = "no responders") -> Any:
    """`nc.request`, its failures as one-line AdminErrors naming `what`."""
    try:
        return await nc.request(subject, payload, timeout=timeout)
    except nats.errors.NoRespondersError:
        raise AdminError(f"{what}: {no_responders}") from None
    except (TimeoutError, nats.errors.TimeoutError):
        raise AdminError(f"{what}: no answer within {timeout:g}s") from None
    except (OSError, nats.errors.Error) as e:
        raise AdminError(f"{what}: {type(e).__name__}") from None


async def api(nc: Any, subject: str, body: dict[str, Any] | None = None,
              timeout: float = 2.0) -> dict[str, Any]:
    """One JetStream API request; the reply, or AdminError for no answer or an error reply."""
    payload = json.dumps(body).encode() if body is not None else b""
    msg = await _request(nc, subject, payload, timeout, subject)
    try:
        reply = json.loads(msg.data) if msg.data else {}
    except ValueError:
        raise AdminError(f"{subject}: unreadable reply {msg.data[:80]!r}") from None
    err = reply.get("error")
    if err:
        raise AdminError(f"{subject}: {err.get('description', 'error')} (err_code {err.get('err_code')})")
    return dict(reply)


def call(url: str, subject: str, body: dict[str, Any] | None = None, timeout: float = 2.0) -> dict[str, Any]:
    return run_on(url, lambda nc: api(nc, subject, body, timeout), timeout + 1.0)


def monitor(addr: tuple[str, int], path: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """A JSON page of a server's monitoring port, None when the server does not answer."""
    try:
        with urllib.request.urlopen(f"http://{addr[0]}:{addr[1]}{path}", timeout=timeout) as r:  # noqa: S310 - http to a node
            data = json.load(r)
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return data if isinstance(data, dict) else None


async def read_stream(nc: Any, stream: str, subject: str, timeout: float = 2.0,
                      limit: int = 1_000_000) -> list[tuple[int, bytes]]:
    """Every message of `stream` on `subject` as (sequence, data), by direct gets through `nc`:
    `$JS.API.DIRECT.GET.<stream>` {"seq": s, "next_by_subj": subject} returns the first message
    at or after s, from the replica of the server that takes the request (direct gets are a
    queue subscription of every replica, and a server prefers its own subscriber)."""
    out: list[tuple[int, bytes]] = []
    seq = 1
    while len(out) < limit:
        body = json.dumps({"seq": seq, "next_by_subj": subject}).encode()
        msg = await _request(nc, f"$JS.API.DIRECT.GET.{stream}", body, timeout, f"direct get {stream} seq {seq}",
                             no_responders="no responders (allow_direct off?)")
        hdrs = msg.headers or {}
        status = hdrs.get("Status")
        if status == "404":
            return out
        if status:
            raise AdminError(f"direct get {stream} seq {seq}: {status} {hdrs.get('Description', '')}".strip())
        got = int(hdrs.get("Nats-Sequence", 0))
        if got < seq:
            raise AdminError(f"direct get {stream}: asked for seq >= {seq}, got {got}")
        out.append((got, bytes(msg.data)))
        seq = got + 1
    raise AdminError(f"direct get {stream}: more than {limit} messages")
