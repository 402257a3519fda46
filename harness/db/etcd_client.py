"""A client for etcd 3.4 through its v3 JSON gateway (grpc-gateway over HTTP/1.1).

Keys and values travel base64-encoded; values are JSON-encoded first, so the register holds
JSON scalars like the raftkv client's. Outcomes follow the shared client contract:
- ok: it happened (a read's value, a cas whose compare matched and swapped);
- fail: it certainly did not happen (connection refused before sending, a cas whose compare
  did not match = "cas-mismatch"); a read that did not complete is also fail, since a read
  changes nothing (as in `nodes.client`);
- info: unknown (timeout, connection lost or an error reply after a write was sent).
Each request uses a fresh connection so that a stale keep-alive socket never turns a request
that was never sent into an indeterminate one.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Error replies of etcd that say the request was refused before it was proposed.
_NOT_APPLIED = ("etcdserver: too many requests", "etcdserver: not capable")


@dataclass(frozen=True)
class EtcdResult:
    """Same shape as `nodes.client.ClientResult`."""

    status: str  # "ok" | "fail" | "info"
    value: Any = None
    error: str | None = None
    leader: str | None = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _enc_key(key: str) -> str:
    return _b64(key.encode())


def _enc_value(value: Any) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _dec_value(b64: str | None) -> Any:
    raw = base64.b64decode(b64 or "")
    return json.loads(raw) if raw else None


class EtcdClient:
    """get/put/cas/delete against one etcd member's client URL (`addr` = host, port)."""

    def __init__(self, addr: tuple[str, int], timeout: float = 2.0) -> None:
        self.addr = addr
        self.timeout = timeout

    def _call(self, path: str, body: dict[str, Any], *, mutating: bool) -> tuple[str, Any]:
        """POST `body` to `path`; return ("ok", reply) or (status, error text)."""
        conn = http.client.HTTPConnection(self.addr[0], self.addr[1], timeout=self.timeout)
        try:
            try:
                conn.connect()
            except OSError as e:
                # Nothing was sent: certainly not applied.
                return "fail", f"connect: {e.strerror or type(e).__name__}"
            try:
                conn.request("POST", path, body=json.dumps(body),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except TimeoutError:
                return ("info" if mutating else "fail"), "timeout"
            except (OSError, http.client.HTTPException) as e:
                return ("info" if mutating else "fail"), f"connection lost: {type(e).__name__}"
        finally:
            conn.close()
        try:
            reply = json.loads(data) if data else {}
        except ValueError:
            reply = {"error": data[:200].decode(errors="replace")}
        if resp.status == 200 and "error" not in reply:
            return "ok", reply
        message = str(reply.get("message") or reply.get("error") or f"HTTP {resp.status}")
        if not mutating or any(m in message for m in _NOT_APPLIED):
            return "fail", message
        return "info", message

    def get(self, key: str, read: str | None = None) -> EtcdResult:
        """Linearizable read unless `read == "serializable"` (may be stale, served locally)."""
        body: dict[str, Any] = {"key": _enc_key(key)}
        if read == "serializable":
            body["serializable"] = True
        elif read not in (None, "linearizable"):
            return EtcdResult("fail", error=f"etcd has no {read!r} read mode")
        status, reply = self._call("/v3/kv/range", body, mutating=False)
        if status != "ok":
            return EtcdResult(status, error=reply)
        kvs = reply.get("kvs") or []
        return EtcdResult("ok", value=_dec_value(kvs[0].get("value")) if kvs else None)

    def put(self, key: str, value: Any) -> EtcdResult:
        status, reply = self._call(
            "/v3/kv/put", {"key": _enc_key(key), "value": _enc_value(value)}, mutating=True
        )
        return EtcdResult("ok", value=value) if status == "ok" else EtcdResult(status, error=reply)

    def cas(self, key: str, expected: Any, new: Any) -> EtcdResult:
        """Swap in `new` iff the value is `expected` (None = the key is absent), in one txn."""
        k = _enc_key(key)
        if expected is None:
            compare = {"key": k, "result": "EQUAL", "target": "CREATE", "create_revision": "0"}
        else:
            compare = {"key": k, "result": "EQUAL", "target": "VALUE", "value": _enc_value(expected)}
        body = {
            "compare": [compare],
            "success": [{"request_put": {"key": k, "value": _enc_value(new)}}],
        }
        status, reply = self._call("/v3/kv/txn", body, mutating=True)
        if status != "ok":
            return EtcdResult(status, error=reply)
        # The gateway omits false booleans.
        if reply.get("succeeded", False):
            return EtcdResult("ok", value=[expected, new])
        return EtcdResult("fail", error="cas-mismatch")

    def delete(self, key: str) -> EtcdResult:
        status, reply = self._call("/v3/kv/deleterange", {"key": _enc_key(key)}, mutating=True)
        return EtcdResult("ok") if status == "ok" else EtcdResult(status, error=reply)

    def log_entries(self, prefix: str) -> EtcdResult:
        """This member's own copy of the keys under `prefix` (a serializable range, served
        from local state), as [[create revision, value], ...] in creation order."""
        start = prefix.encode()
        end = start[:-1] + bytes([start[-1] + 1])
        body = {"key": _b64(start), "range_end": _b64(end), "serializable": True,
                "sort_order": "ASCEND", "sort_target": "CREATE"}
        status, reply = self._call("/v3/kv/range", body, mutating=False)
        if status != "ok":
            return EtcdResult(status, error=reply)
        kvs = reply.get("kvs") or []
        return EtcdResult("ok", value=[[int(kv.get("create_revision", 0)), _dec_value(kv.get("value"))] for kv in kvs])

    def close(self) -> None:
        """Nothing to release: every request has its own connection."""


#: Keys of the log workload's appends.
LOG_PREFIX = "fl-log/"


class EtcdOpClient:
    """The harness `Client` for etcd: turns history ops into `EtcdClient` calls.

    `addresses` maps node names to client addresses; `read` is "linearizable" or
    "serializable". Single-register workloads (no `key` in the op) use the key "r"."""

    def __init__(
        self, addresses: dict[str, tuple[str, int]], timeout: float = 2.0, read: str = "linearizable"
    ) -> None:
        self.addresses = addresses
        self.timeout = timeout
        self.read = read
        self._client: EtcdClient | None = None

    def open(self, node: str) -> None:
        if node not in self.addresses:
            raise KeyError(f"etcd client: unknown node {node!r}")
        self._client = EtcdClient(self.addresses[node], self.timeout)

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]:
        if self._client is None:
            raise RuntimeError("etcd client: invoke before open")
        key, f, value = str(op.get("key", "r")), op["f"], op.get("value")
        if f == "read":
            res = self._client.get(key, read=self.read)
        elif f == "write":
            res = self._client.put(key, value)
        elif f == "cas":
            expected, new = op["value"]
            res = self._client.cas(key, expected, new)
        elif f == "delete":
            res = self._client.delete(key)
        elif f == "append":
            # the log workload: one key per appended value, ordered by its create revision
            res = self._client.put(f"{LOG_PREFIX}{value:012d}", value)
        else:
            raise ValueError(f"etcd client: unknown op f={f!r}")
        done = {**op, "type": res.status}
        if f == "read":
            done["value"] = res.value if res.status == "ok" else None
        if res.error is not None:
            done["error"] = res.error
        return done

    def close(self) -> None:
        self._client = None
