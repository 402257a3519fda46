"""The raftkv client protocol: newline-delimited JSON requests and replies over TCP.

See docs/raftkv-protocol.md. Requests name an ``op`` (get, put, cas, delete) on a string
``key``; every reply has ``status`` ok / fail / info, and is unambiguous: fail means the
operation certainly did not and will not take effect, info means it may or may not have.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

OPS = ("get", "put", "cas", "delete")
READ_MODES = ("linearizable", "lease", "serializable")
MAX_LINE = 1 << 20


class ProtocolError(ValueError):
    """A request that does not follow the protocol (answered with fail/bad-request)."""


@dataclass(frozen=True)
class Request:
    op: str
    key: str
    value: Any = None
    expected: Any = None
    new: Any = None
    read: str | None = None
    id: Any = None  # echoed back so a client may pipeline


@dataclass(frozen=True)
class Reply:
    status: str  # "ok" | "fail" | "info"
    value: Any = None
    error: str | None = None
    leader: str | None = None
    id: Any = None

    def to_line(self) -> bytes:
        body: dict[str, Any] = {"status": self.status, "value": self.value}
        if self.error is not None:
            body["error"] = self.error
        if self.leader is not None:
            body["leader"] = self.leader
        if self.id is not None:
            body["id"] = self.id
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    v = float(text)
    if math.isinf(v):
        raise ValueError(f"number {text[:20]} is out of range")
    return v


# strict JSON (RFC 8259): Python's json accepts NaN and Infinity, and 1e400 becomes inf, which
# json.dumps then writes back as NaN/Infinity -- a reply no other JSON parser reads
_STRICT = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def loads(data: bytes | str, what: str) -> Any:
    """Strict JSON from a socket or a log entry: any malformed input is a ProtocolError.
    Deep nesting raises RecursionError in json, not ValueError, and must not escape to the
    node loop."""
    try:
        return _STRICT.decode(data.decode() if isinstance(data, (bytes, bytearray)) else data)
    except (ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise ProtocolError(f"{what} is not JSON: {reason}") from None


def _scalar(v: Any, field: str) -> Any:
    if v is None or isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    raise ProtocolError(f"field {field!r} must be an int, a string or null")


def parse_request(line: bytes) -> Request:
    body = loads(line, "request")
    if not isinstance(body, dict):
        raise ProtocolError("request must be a JSON object")
    op = body.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r} (expected one of {', '.join(OPS)})")
    key = body.get("key")
    if not isinstance(key, str):
        raise ProtocolError("field 'key' must be a string")
    read = body.get("read")
    if read is not None and read not in READ_MODES:
        raise ProtocolError(f"unknown read mode {read!r}")
    return Request(
        op=op,
        key=key,
        value=_scalar(body.get("value"), "value"),
        expected=_scalar(body.get("expected"), "expected"),
        new=_scalar(body.get("new"), "new"),
        read=read,
        id=body.get("id"),
    )


def request_line(req: Request) -> bytes:
    body: dict[str, Any] = {"op": req.op, "key": req.key}
    if req.op == "put":
        body["value"] = req.value
    elif req.op == "cas":
        body["expected"] = req.expected
        body["new"] = req.new
    if req.read is not None:
        body["read"] = req.read
    if req.id is not None:
        body["id"] = req.id
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def parse_reply(line: bytes) -> Reply:
    try:
        body = json.loads(line)
        status = body["status"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise ProtocolError(f"reply is not a protocol object: {line[:80]!r}") from e
    if status not in ("ok", "fail", "info"):
        raise ProtocolError(f"reply has unknown status {status!r}")
    return Reply(status, body.get("value"), body.get("error"), body.get("leader"), body.get("id"))


def encode_command(rid: str, req: Request) -> bytes:
    """The data of a log entry for a write: the request plus the proposer's request id."""
    body: dict[str, Any] = {"rid": rid, "op": req.op, "key": req.key}
    if req.op == "put":
        body["value"] = req.value
    elif req.op == "cas":
        body["expected"] = req.expected
        body["new"] = req.new
    return json.dumps(body, separators=(",", ":")).encode()


def decode_command(data: bytes) -> dict[str, Any]:
    body = loads(data, "log entry")
    if not isinstance(body, dict) or body.get("op") not in ("put", "cas", "delete"):
        raise ProtocolError(f"log entry is not a write command: {data[:80]!r}")
    if not isinstance(body.get("key"), str):
        # every replica skips it alike; applying it would crash the node loop (found by the
        # corrupt fault with skip-wal-crc: a flipped bit turned "key" into "cey")
        raise ProtocolError(f"log entry has no string key: {data[:80]!r}")
    return body
