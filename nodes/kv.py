"""The key-value state machine: a dict of string keys to JSON scalars, changed only by
committed log entries, in log order."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nodes.protocol import ProtocolError, Reply, loads


@dataclass
class KVStore:
    data: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def apply(self, cmd: dict[str, Any]) -> Reply:
        """Apply one committed write; the reply is what the proposer's client is told."""
        op = cmd["op"]
        key = cmd["key"]
        if op == "put":
            self.data[key] = cmd.get("value")
            return Reply("ok", cmd.get("value"))
        if op == "delete":
            self.data.pop(key, None)
            return Reply("ok", None)
        # cas: a missing key reads as None, so expected=None matches an absent key
        current = self.data.get(key)
        if current != cmd.get("expected") or type(current) is not type(cmd.get("expected")):
            return Reply("fail", current, error="cas-mismatch")
        self.data[key] = cmd.get("new")
        return Reply("ok", cmd.get("new"))

    def snapshot(self) -> bytes:
        return json.dumps(self.data, sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def valid_snapshot(data: bytes) -> bool:
        """Whether restore(data) would succeed (a snapshot from the network is checked
        before Raft takes it: restoring is too late to refuse it)."""
        if not data:
            return True
        try:
            return isinstance(loads(data, "snapshot"), dict)
        except ProtocolError:
            return False

    def restore(self, data: bytes) -> None:
        body = json.loads(data) if data else {}
        if not isinstance(body, dict):
            raise ValueError("snapshot data is not a JSON object")
        self.data = body
