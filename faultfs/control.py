"""The control channel: a unix socket (mode 0600, owner root) taking one command per line and
answering each with one JSON object per line. No pickle, no eval: commands are words.

    lose-unsynced      power loss: drop everything not durable (the node must be dead)
    sync-all           make everything durable (heal, teardown)
    disk-full on|off   writes, creates and extending truncates fail with ENOSPC while on
    status             journal sizes, counters, generation

Every answer has "ok" (true or false) and, when false, a one-line "error".
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any

from faultfs import crash
from faultfs.layer import Layer

log = logging.getLogger(__name__)

COMMANDS = ("lose-unsynced", "sync-all", "disk-full on|off", "status")
MAX_LINE = 4096
IDLE_SECONDS = 300.0


class ControlError(Exception):
    """The control socket could not be reached or answered with an error."""


def lose_unsynced(layer: Layer) -> dict[str, Any]:
    with layer.lock:
        if layer.broken is not None:
            raise RuntimeError(layer.broken)
        try:
            return crash.lose_unsynced(layer)
        except BaseException as e:
            layer.broken = f"power-loss rebuild failed midway ({e}); see {layer.backing}/.faultfs"
            raise


def execute(layer: Layer, line: str) -> dict[str, Any]:
    words = line.split()
    try:
        match words:
            case ["lose-unsynced"]:
                t0 = time.monotonic()
                out = lose_unsynced(layer)
                out["seconds"] = round(time.monotonic() - t0, 4)
                log.info("lose-unsynced: %s", {k: v for k, v in out.items() if "paths" not in k})
            case ["sync-all"]:
                out = layer.sync_all()
            case ["disk-full", ("on" | "off") as how]:
                layer.set_disk_full(how == "on")
                out = {"disk_full": how == "on"}
            case ["status"]:
                out = layer.status()
            case _:
                return {"ok": False, "error": f"unknown command {line.strip()[:80]!r} "
                                              f"(known: {', '.join(COMMANDS)})"}
    except Exception as e:
        log.exception("control command %r failed", line.strip())
        return {"ok": False, "error": f"{words[0]}: {e}"}
    return {"ok": True, **out}


class ControlServer:
    """Serves the control socket: a thread accepts, a thread per connection answers (a
    client that never closes holds only its own thread; idle ones are cut after
    IDLE_SECONDS). Commands serialize on the layer's lock. The socket is
    bound at once (before the mount, while the umask is still the caller's) and answers
    only once start() runs (when the mount is up): connecting before is refused."""

    def __init__(self, layer: Layer, path: Path) -> None:
        self.layer = layer
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: only root may drive faults
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._thread = threading.Thread(target=self._serve, name="faultfs-control", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._sock.listen(8)
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.close()
        finally:
            self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), name="faultfs-control-conn",
                             daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(IDLE_SECONDS)
        try:
            with conn, conn.makefile("rwb") as f:
                while True:
                    raw = f.readline(MAX_LINE + 1)
                    if not raw:
                        return
                    if len(raw) > MAX_LINE:
                        reply: dict[str, Any] = {"ok": False, "error": "command line too long"}
                        while raw and not raw.endswith(b"\n"):  # skip the rest of that line
                            raw = f.readline(MAX_LINE + 1)
                    else:
                        reply = execute(self.layer, raw.decode("utf-8", "replace"))
                    f.write(json.dumps(reply).encode() + b"\n")
                    f.flush()
        except OSError as e:  # includes the idle timeout and a client gone mid-reply
            log.info("control connection closed: %s", e)


def check_socket_path(path: Path) -> None:
    """Refuse a control path that another faultfs serves; remove a stale socket."""
    if not path.parent.is_dir():
        raise ControlError(f"{path}: its directory does not exist")
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise ControlError(f"{path}: exists and is not a socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: left by a faultfs that died
        return
    finally:
        s.close()
    raise ControlError(f"{path}: another faultfs is serving this control socket")


def request(path: Path, command: str, timeout: float = 30.0, wait: float = 0.0) -> dict[str, Any]:
    """Send one command; with wait > 0, retry connecting that long (the mount starting)."""
    deadline = time.monotonic() + wait
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            break
        except (FileNotFoundError, ConnectionRefusedError) as e:
            s.close()
            if time.monotonic() >= deadline:
                raise ControlError(f"{path}: no faultfs answers ({e.strerror})") from None
            time.sleep(0.05)
    with s:
        try:
            s.sendall(command.encode() + b"\n")
            f = s.makefile("rb")
            line = f.readline()
        except OSError as e:
            raise ControlError(f"{path}: {command}: {e}") from None
    if not line:
        raise ControlError(f"{path}: {command}: faultfs closed the connection")
    reply: dict[str, Any] = json.loads(line)
    return reply
