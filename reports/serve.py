"""A read-only HTTP server over the store: GET and HEAD only, nothing outside the store.

Every request path is resolved (symlinks included) and must land inside the store's real
path; `store/latest` works because it resolves to a run folder inside the store. Only
regular files and folders are served: a FIFO, a socket or a device in the store is refused,
as are names no file system takes and symlink loops. A connection idle for IDLE_TIMEOUT
seconds is closed, and at most MAX_CONNECTIONS are served at once (the rest get 503), so
idle or slow clients cannot hold the server's threads.
"""

from __future__ import annotations

import errno
import html
import logging
import mimetypes
import os
import shutil
import stat
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger(__name__)

#: recorded text files a browser should show rather than download
TEXT_TYPES = {".jsonl": "text/plain", ".log": "text/plain", ".edn": "text/plain", ".yaml": "text/plain",
              ".yml": "text/plain", ".json": "application/json"}
CHUNK = 64 * 1024
#: Seconds a connection may stay silent (between or within requests) before it is closed.
IDLE_TIMEOUT = 30.0
#: Connections served at once; each holds a thread.
MAX_CONNECTIONS = 64
#: What a file system takes: a name of 255 bytes, a path of 4096.
NAME_MAX, PATH_MAX = 255, 4096


class Refused(Exception):
    """A request the store will not answer; carries the HTTP status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def resolve_in_store(store_real: Path, url_path: str) -> Path:
    """Map a URL path to a file or folder inside the store, or raise Refused."""
    # surrogateescape: a file whose name is not UTF-8 stays reachable by its %-escaped bytes
    path = unquote(urlsplit(url_path).path, errors="surrogateescape")
    if "\x00" in path or "\\" in path:
        raise Refused(HTTPStatus.BAD_REQUEST, "bad characters in path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise Refused(HTTPStatus.FORBIDDEN, "path leaves the store")
    if any(len(os.fsencode(p)) > NAME_MAX for p in parts) or len(os.fsencode(path)) > PATH_MAX:
        raise Refused(HTTPStatus.NOT_FOUND, "no such file in the store (name too long)")
    try:
        target = Path(store_real, *parts).resolve(strict=True)
    except RuntimeError:  # Python 3.11 reports a symlink loop so
        raise Refused(HTTPStatus.NOT_FOUND, "symlink loop in the store") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise Refused(HTTPStatus.NOT_FOUND, "symlink loop in the store") from None
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            raise Refused(HTTPStatus.NOT_FOUND, "no such file in the store") from None
        raise Refused(HTTPStatus.FORBIDDEN, f"cannot read: {e.strerror}") from None
    if target != store_real and store_real not in target.parents:
        raise Refused(HTTPStatus.FORBIDDEN, "path resolves outside the store")
    return target


class StoreHandler(BaseHTTPRequestHandler):
    server_version = "faultline-serve"
    store_real: Path  # set on the subclass made by make_server
    #: the socket timeout of StreamRequestHandler: an idle or stalled connection is closed
    timeout = IDLE_TIMEOUT

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _refuse_method(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        log.info("%s %s", self.address_string(), format % args)

    def _error(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        body = f"{status.value} {status.phrase}: {message}\n".encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _answer(self, send_body: bool) -> None:
        try:
            self._serve(send_body)
        except (BrokenPipeError, ConnectionResetError) as exc:  # the client went away mid-answer
            log.info("%s: %s", self.address_string(), exc)
            self.close_connection = True

    def _serve(self, send_body: bool) -> None:
        try:
            target = resolve_in_store(self.store_real, self.path)
        except Refused as exc:
            self._error(exc.status, str(exc))
            return
        if target.is_dir():
            if not urlsplit(self.path).path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", urlsplit(self.path).path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            # a run folder opens on its report (its relative links work from the folder URL)
            index = next((target / n for n in ("index.html", "report.html") if (target / n).is_file()), None)
            if index is not None:
                target = index
            else:
                try:
                    body = self._listing(target)
                except OSError as exc:
                    self._error(HTTPStatus.FORBIDDEN, f"cannot list: {exc.strerror}")
                    return
                self._send_bytes(body, "text/html; charset=utf-8", send_body)
                return
        ctype = TEXT_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json":
            ctype += "; charset=utf-8"
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below)
            fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self._error(HTTPStatus.FORBIDDEN, f"cannot read: {exc.strerror}")
            return
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._error(HTTPStatus.FORBIDDEN, "not a regular file")
                return
            os.set_blocking(fd, True)
            size = st.st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(size))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if send_body:
                shutil.copyfileobj(fh, self.wfile, CHUNK)

    def _send_bytes(self, body: bytes, ctype: str, send_body: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _listing(self, folder: Path) -> bytes:
        def shown(name: str) -> str:  # a name that is not UTF-8 is shown with U+FFFD
            return html.escape(os.fsencode(name).decode("utf-8", "replace"))

        rel = folder.relative_to(self.store_real).as_posix()
        items = []
        for p in sorted(folder.iterdir()):
            slash = "/" if p.is_dir() else ""  # False for a symlink loop: listed as a file
            items.append(f'<li><a href="{quote(os.fsencode(p.name))}{slash}">{shown(p.name)}{slash}</a></li>')
        title = shown("/" if rel == "." else f"/{rel}/")
        return (f"<!DOCTYPE html><meta charset='utf-8'><title>{title}</title><h1>{title}</h1>"
                f"<ul><li><a href='../'>../</a></li>{''.join(items)}</ul>").encode()


class StoreServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: one more is answered
    503 at once from the accepting thread and closed."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int = MAX_CONNECTIONS) -> None:
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("%s: refused: %d connections are being served", client_address[0], self.max_connections)
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(store: Path, bind: str = "127.0.0.1", port: int = 8080, *, idle_timeout: float = IDLE_TIMEOUT,
                max_connections: int = MAX_CONNECTIONS) -> StoreServer:
    """A server bound to (bind, port) answering from `store`; port 0 picks a free port."""
    store_real = Path(store).resolve()
    if not store_real.is_dir():
        raise FileNotFoundError(f"{store}: store folder does not exist")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, got {port}")
    handler = type("BoundStoreHandler", (StoreHandler,), {"store_real": store_real, "timeout": idle_timeout})
    return StoreServer((bind, port), handler, max_connections)
