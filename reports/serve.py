"""A read-only HTTP server over the store: GET and HEAD only, nothing outside the store.

Every request path is resolved (symlinks included) and must land inside the store's real
path; `store/latest` works because it resolves to a run folder inside the store.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import shutil
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

log = logging.getLogger(__name__)

#: recorded text files a browser should show rather than download
TEXT_TYPES = {".jsonl": "text/plain", ".log": "text/plain", ".edn": "text/plain", ".yaml": "text/plain",
              ".yml": "text/plain", ".json": "application/json"}
CHUNK = 64 * 1024


class Refused(Exception):
    """A request the store will not answer; carries the HTTP status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def resolve_in_store(store_real: Path, url_path: str) -> Path:
    """Map a URL path to a file or folder inside the store, or raise Refused."""
    path = unquote(urlsplit(url_path).path)
    if "\x00" in path or "\\" in path:
        raise Refused(HTTPStatus.BAD_REQUEST, "bad characters in path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise Refused(HTTPStatus.FORBIDDEN, "path leaves the store")
    target = Path(store_real, *parts).resolve()
    if target != store_real and store_real not in target.parents:
        raise Refused(HTTPStatus.FORBIDDEN, "path resolves outside the store")
    if not target.exists():
        raise Refused(HTTPStatus.NOT_FOUND, "no such file in the store")
    return target


class StoreHandler(BaseHTTPRequestHandler):
    server_version = "faultline-serve"
    store_real: Path  # set on the subclass made by make_server

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
                self._send_bytes(self._listing(target), "text/html; charset=utf-8", send_body)
                return
        ctype = TEXT_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json":
            ctype += "; charset=utf-8"
        try:
            fh = target.open("rb")
        except OSError as exc:
            self._error(HTTPStatus.FORBIDDEN, f"cannot read: {exc.strerror}")
            return
        with fh:
            size = target.stat().st_size
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
        rel = folder.relative_to(self.store_real).as_posix()
        items = []
        for p in sorted(folder.iterdir()):
            name = p.name + ("/" if p.is_dir() else "")
            items.append(f'<li><a href="{quote(name)}">{html.escape(name)}</a></li>')
        title = html.escape("/" if rel == "." else f"/{rel}/")
        return (f"<!DOCTYPE html><meta charset='utf-8'><title>{title}</title><h1>{title}</h1>"
                f"<ul><li><a href='../'>../</a></li>{''.join(items)}</ul>").encode()


def make_server(store: Path, bind: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    """A server bound to (bind, port) answering from `store`; port 0 picks a free port."""
    store_real = Path(store).resolve()
    if not store_real.is_dir():
        raise FileNotFoundError(f"{store}: store folder does not exist")
    handler = type("BoundStoreHandler", (StoreHandler,), {"store_real": store_real})
    server = ThreadingHTTPServer((bind, port), handler)
    server.daemon_threads = True
    return server
