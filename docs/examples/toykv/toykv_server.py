"""toykv: a one-process key-value server, the system under test of faultline's plug-in example.

Newline-delimited JSON over TCP: {"f": "read"|"write"|"cas"|"delete", "key", "value"} ->
{"type": "ok"|"fail", "value"?, "error"?}. With --log FILE every change is appended to FILE and
fsynced before it is acknowledged, and the file is replayed at start; without it the state
lives in memory only, so a crash loses every acknowledged write, which faultline should find.
"""

from __future__ import annotations

import argparse
import json
import os
import socketserver
import threading
from typing import Any

STATE: dict[str, Any] = {}
LOCK = threading.Lock()
LOG_FD: int | None = None


def apply(req: dict[str, Any]) -> dict[str, Any]:
    f, key = req.get("f"), str(req.get("key"))
    value: Any = req.get("value")
    with LOCK:
        if f == "read":
            return {"type": "ok", "value": STATE.get(key)}
        if f == "cas":
            expected, new = value
            if STATE.get(key) != expected:
                return {"type": "fail", "error": "compare failed"}
            value = new
        elif f not in ("write", "delete"):
            return {"type": "fail", "error": f"unknown f {f!r}"}
        change = {"key": key, "value": None if f == "delete" else value}
        if LOG_FD is not None:
            os.write(LOG_FD, (json.dumps(change) + "\n").encode())
            os.fsync(LOG_FD)
        STATE[key] = change["value"]
        return {"type": "ok"}


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            try:
                reply = apply(json.loads(line))
            except (ValueError, TypeError, KeyError) as e:
                reply = {"type": "fail", "error": f"bad request: {e}"}
            self.wfile.write((json.dumps(reply) + "\n").encode())
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main() -> None:
    global LOG_FD
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="host:port")
    ap.add_argument("--log", help="append-only log for durability (omit for memory only)")
    ns = ap.parse_args()
    if ns.log:
        if os.path.exists(ns.log):
            with open(ns.log) as fh:
                for line in fh:
                    try:
                        change = json.loads(line)
                    except ValueError:
                        break  # a torn last line: never acknowledged
                    STATE[change["key"]] = change["value"]
        LOG_FD = os.open(ns.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    host, port = ns.listen.rsplit(":", 1)
    with Server((host, int(port)), Handler) as srv:
        srv.serve_forever()


if __name__ == "__main__":
    main()
