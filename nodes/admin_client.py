"""Python wrapper of the raftkv admin HTTP API (see nodes/admin.py)."""

from __future__ import annotations

import http.client
import json
from typing import Any


class AdminError(Exception):
    """An admin call failed; the message is one line naming the node and the reason."""


class AdminClient:
    def __init__(
        self, addr: tuple[str, int], timeout: float = 2.0, token: str | bytes | None = None
    ) -> None:
        """`token`: the cluster's admin token (the content of the node's --token-file)."""
        self.addr = addr
        self.timeout = timeout
        self._auth: str | None = None
        if token is not None:
            text = token.decode("ascii") if isinstance(token, bytes) else token
            self._auth = "Bearer " + text.strip()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        host, port = self.addr
        conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            if self._auth is not None:
                headers["Authorization"] = self._auth
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise AdminError(f"admin {host}:{port} {method} {path}: {e}") from e
        finally:
            conn.close()
        try:
            out = json.loads(raw) if raw else {}
        except (ValueError, RecursionError) as e:
            raise AdminError(f"admin {host}:{port} {path}: reply is not JSON") from e
        if resp.status >= 400:
            err = out.get("error") if isinstance(out, dict) else None
            raise AdminError(f"admin {host}:{port} {path}: HTTP {resp.status}: {err or raw[:100]!r}")
        if not isinstance(out, dict):
            raise AdminError(f"admin {host}:{port} {path}: reply is not a JSON object")
        return out

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def transfer_leader(self, to: str) -> dict[str, Any]:
        return self._call("POST", "/transfer-leader", {"to": to})

    def add_member(self, node: str, peer: str | None = None, learner: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"op": "add-learner" if learner else "add", "node": node}
        if peer is not None:
            body["peer"] = peer
        return self._call("POST", "/members", body)

    def promote(self, node: str) -> dict[str, Any]:
        return self._call("POST", "/members", {"op": "promote", "node": node})

    def remove_member(self, node: str) -> dict[str, Any]:
        return self._call("POST", "/members", {"op": "remove", "node": node})

    def compact(self) -> dict[str, Any]:
        return self._call("POST", "/compact", {})

    def quiesce(self, on: bool) -> dict[str, Any]:
        return self._call("POST", "/quiesce", {"on": on})
