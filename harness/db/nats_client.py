"""The NATS JetStream `Client`: history ops on a replicated KV bucket (and the `log` stream)
through nats-py, for the harness's synchronous worker threads.

Each client owns an asyncio event loop and runs it only inside `invoke` (one worker thread
per client, so no loop is ever shared). The connection never reconnects by itself: nats-py
would buffer publishes while reconnecting and send them later, which would turn an op the
history calls failed into one that happened. A lost connection is reopened by the next op.

The JetStream API is used directly, not nats-py's KeyValue wrapper, so that every reply maps
to exactly one outcome (see docs/architecture.md, "History"):
- read: `$JS.API.STREAM.MSG.GET.<stream>` (served by the stream leader) or, with
  `allow_direct`, `$JS.API.DIRECT.GET.<stream>.<subject>` (served by any replica: may be
  stale). A missing key or a delete marker reads as null. Anything else is `fail`: a read
  changes nothing.
- write: a publish to `$KV.<bucket>.<key>` acknowledged by the stream (PubAck) is `ok`;
- delete: a publish of a `KV-Operation: DEL` marker;
- cas [expected, new]: read the key's value and revision; a different value is `fail`
  (cas-mismatch); else publish with `Nats-Expected-Last-Subject-Sequence: <revision>`, whose
  "wrong last sequence" (err_code 10071) is a definite `fail`, as the API documents it (2.9.10
  can send it from a deposed leader for a cas the new leader commits: docs/findings.md);
- append (log workload): a publish of the value to the log stream's subject.
A write that was sent and not acknowledged (timeout, connection lost, an error reply this
module does not know to be definite) is `info`; "no responders" (no stream leader had
interest, so the message went nowhere) and a connection that was down before sending are
`fail`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors

log = logging.getLogger(__name__)

#: Key used by single-register workloads, whose ops carry no `key`.
REGISTER_KEY = "r"

#: PubAck error codes that say the message was not stored: 10071 "wrong last sequence".
DEFINITE_PUB_ERRORS = frozenset({10071})


@dataclass(frozen=True)
class Target:
    """Where a workload's data lives: the KV bucket, and the log stream with its subject."""

    bucket: str = "fl"
    direct: bool = False
    log_stream: str = "FL_LOG"
    log_subject: str = "fl.log"

    @property
    def kv_stream(self) -> str:
        return f"KV_{self.bucket}"

    def key_subject(self, key: str) -> str:
        return f"$KV.{self.bucket}.{key}"


class _Outcome(Exception):
    """Ends an op early with a completion type and error text."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def encode_value(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def decode_value(data: bytes | None) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


class NatsClient:
    """The harness `Client` for NATS: `urls` maps node names to `nats://host:port`."""

    def __init__(self, urls: Mapping[str, str], target: Target, timeout: float = 2.0) -> None:
        self.urls = dict(urls)
        self.target = target
        self.timeout = timeout
        self.node: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Any = None

    # -- lifecycle ------------------------------------------------------------------------
    def open(self, node: str) -> None:
        if node not in self.urls:
            raise KeyError(f"nats client: unknown node {node!r}")
        self.close()
        self.node = node
        self._loop = asyncio.new_event_loop()

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(asyncio.wait_for(self._nc.close(), 2.0))
            # nats-py's reader and flusher tasks end with the connection; cancel stragglers
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self._nc = None
            loop.close()

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]:
        if self._loop is None or self.node is None:
            raise RuntimeError("nats client: invoke before open")
        deadline = time.monotonic() + self.timeout
        try:
            value = self._loop.run_until_complete(self._op(op, deadline))
        except _Outcome as o:
            if o.status == "info" or self._nc is None or not self._nc.is_connected:
                self._drop_connection()
            return {"type": o.status, "error": o.error}
        out: dict[str, Any] = {"type": "ok"}
        if op["f"] == "read":
            out["value"] = value
        return out

    def _drop_connection(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(asyncio.wait_for(nc.close(), 1.0))

    # -- plumbing -------------------------------------------------------------------------
    async def _connection(self, deadline: float) -> Any:
        if self._nc is not None and self._nc.is_connected:
            return self._nc
        self._nc = None
        assert self.node is not None

        async def quiet(_: Exception) -> None:  # nats-py logs every async error otherwise
            return None

        left = max(0.1, deadline - time.monotonic())
        try:
            self._nc = await asyncio.wait_for(nats.connect(
                self.urls[self.node], allow_reconnect=False, connect_timeout=max(1, int(left + 0.999)),
                max_reconnect_attempts=0, error_cb=quiet, pending_size=0,
            ), left)
        except (TimeoutError, OSError, nats.errors.Error) as e:
            raise _Outcome("fail", f"connect: {type(e).__name__}: {e}".rstrip(": ")) from None
        return self._nc

    async def _request(self, subject: str, payload: bytes, deadline: float, *, mutating: bool,
                       headers: dict[str, str] | None = None) -> Any:
        """The reply message, or _Outcome. A write that may have been sent fails as info."""
        nc = await self._connection(deadline)
        unsent = "fail"
        sent = "info" if mutating else "fail"
        if not nc.is_connected:
            raise _Outcome(unsent, "not connected")
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Outcome(unsent, "timeout before sending")
        try:
            return await nc.request(subject, payload, timeout=left, headers=headers)
        except nats.errors.NoRespondersError:
            raise _Outcome("fail", "no responders") from None
        except nats.errors.TimeoutError:
            raise _Outcome(sent, "timeout") from None
        except (nats.errors.ConnectionClosedError, nats.errors.OutboundBufferLimitError) as e:
            # raised by publish() before buffering anything: the request never left
            raise _Outcome(unsent, f"not connected: {type(e).__name__}") from None
        except (OSError, asyncio.CancelledError, nats.errors.Error) as e:
            raise _Outcome(sent, f"{type(e).__name__}: {e}".rstrip(": ")) from None

    async def _publish(self, subject: str, payload: bytes, deadline: float,
                       headers: dict[str, str] | None = None) -> int:
        """Publish to a stream and wait for its PubAck; the stream sequence on success."""
        msg = await self._request(subject, payload, deadline, mutating=True, headers=headers)
        try:
            ack = json.loads(msg.data)
        except ValueError:
            raise _Outcome("info", f"unreadable PubAck: {msg.data[:80]!r}") from None
        err = ack.get("error")
        if err:
            code = err.get("err_code")
            text = f"{err.get('description', 'error')} (err_code {code})"
            if code in DEFINITE_PUB_ERRORS:
                raise _Outcome("fail", text)
            raise _Outcome("info", text)
        return int(ack.get("seq", 0))

    async def _get(self, key: str, deadline: float) -> tuple[Any, int]:
        """(value or None, revision or 0) of the key's last message."""
        t = self.target
        subject = t.key_subject(key)
        if t.direct:
            msg = await self._request(f"$JS.API.DIRECT.GET.{t.kv_stream}.{subject}", b"", deadline,
                                      mutating=False)
            hdrs = msg.headers or {}
            status = hdrs.get("Status")
            if status == "404":
                return None, 0
            if status:
                raise _Outcome("fail", f"direct get: {status} {hdrs.get('Description', '')}".strip())
            seq = int(hdrs.get("Nats-Sequence", 0))
            if hdrs.get("KV-Operation") in ("DEL", "PURGE"):
                return None, seq
            return decode_value(msg.data), seq
        msg = await self._request(f"$JS.API.STREAM.MSG.GET.{t.kv_stream}",
                                  json.dumps({"last_by_subj": subject}).encode(), deadline,
                                  mutating=False)
        try:
            reply = json.loads(msg.data)
        except ValueError:
            raise _Outcome("fail", f"unreadable reply: {msg.data[:80]!r}") from None
        err = reply.get("error")
        if err:
            if err.get("err_code") == 10037:  # no message found
                return None, 0
            raise _Outcome("fail", f"{err.get('description', 'error')} (err_code {err.get('err_code')})")
        m = reply.get("message") or {}
        seq = int(m.get("seq", 0))
        hdrs = base64.b64decode(m.get("hdrs") or "")
        if b"KV-Operation: DEL" in hdrs or b"KV-Operation: PURGE" in hdrs:
            return None, seq
        return decode_value(base64.b64decode(m.get("data") or "")), seq

    # -- ops ------------------------------------------------------------------------------
    async def _op(self, op: dict[str, Any], deadline: float) -> Any:
        f = op["f"]
        key = str(op.get("key", REGISTER_KEY))
        t = self.target
        if f == "read":
            value, _ = await self._get(key, deadline)
            return value
        if f == "write":
            await self._publish(t.key_subject(key), encode_value(op["value"]), deadline)
            return None
        if f == "delete":
            await self._publish(t.key_subject(key), b"", deadline, headers={"KV-Operation": "DEL"})
            return None
        if f == "cas":
            expected, new = op["value"]
            current, revision = await self._get(key, deadline)
            if current != expected:
                raise _Outcome("fail", "cas-mismatch")
            try:
                await self._publish(t.key_subject(key), encode_value(new), deadline,
                                    headers={"Nats-Expected-Last-Subject-Sequence": str(revision)})
            except _Outcome as o:
                if o.status == "fail" and "wrong last sequence" in o.error:
                    raise _Outcome("fail", f"cas-mismatch (revision {revision} is not the last)") from None
                raise
            return None
        if f == "append":
            await self._publish(t.log_subject, encode_value(op["value"]), deadline)
            return None
        raise ValueError(f"nats client: unknown op f={f!r}")
