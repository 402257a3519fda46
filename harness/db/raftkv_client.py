"""The raftkv `Client`: performs history ops with `nodes.client.KVClient` against one node."""

from __future__ import annotations

from typing import Any

from harness.protocols import Provider
from nodes.client import ClientResult, KVClient

#: Key used by single-register workloads, whose ops carry no `key`.
REGISTER_KEY = "r"


class RaftkvClient:
    def __init__(self, provider: Provider, timeout: float = 2.0) -> None:
        self.provider = provider
        self.timeout = timeout
        self.node: str | None = None
        self._kv: KVClient | None = None

    def open(self, node: str) -> None:
        self.close()
        self.node = node
        self._kv = KVClient(self.provider.addresses(node).client, timeout=self.timeout)

    def _call(self, op: dict[str, Any]) -> ClientResult:
        kv = self._kv
        if kv is None:
            raise RuntimeError("RaftkvClient.invoke before open")
        f: str = op["f"]
        key: str = op.get("key", REGISTER_KEY)
        value: Any = op.get("value")
        if f == "read":
            return kv.get(key)
        if f == "write":
            return kv.put(key, value)
        if f == "cas":
            expected, new = value
            return kv.cas(key, expected, new)
        if f == "delete":
            return kv.delete(key)
        raise ValueError(f"raftkv client: unknown op f={f!r}")

    def invoke(self, op: dict[str, Any]) -> dict[str, Any]:
        res = self._call(op)
        out: dict[str, Any] = {"type": res.status}
        if res.status == "ok" and op["f"] == "read":
            out["value"] = res.value
        if res.error:
            out["error"] = res.error
        return out

    def close(self) -> None:
        if self._kv is not None:
            self._kv.close()
            self._kv = None
