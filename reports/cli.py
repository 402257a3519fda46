"""`faultline serve` and `faultline report`: argv[0] names the subcommand."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _serve(args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="faultline serve", description="serve the store read-only over HTTP")
    p.add_argument("--store", type=Path, default=Path("store"), help="store folder (default ./store)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8080, help="port (0 picks a free one; default 8080)")
    p.add_argument("--no-index", action="store_true", help="do not re-render store/index.html first")
    ns = p.parse_args(args)
    from reports.index import render_index
    from reports.serve import make_server

    if not 0 <= ns.port <= 65535:
        print(f"faultline serve: --port: expected 0-65535 (0 picks a free one), got {ns.port}", file=sys.stderr)
        return 3
    if not ns.store.is_dir():
        print(f"faultline serve: {ns.store}: no such store folder", file=sys.stderr)
        return 3
    try:
        if not ipaddress.ip_address(ns.bind).is_loopback:
            log.warning("serving %s on %s: reachable beyond this machine", ns.store, ns.bind)
    except ValueError:
        log.warning("bind address %s is not an IP address; it may not be loopback", ns.bind)
    if not ns.no_index:
        try:
            render_index(ns.store)
        except OSError as exc:
            log.warning("could not refresh %s/index.html: %s", ns.store, exc)
    try:
        server = make_server(ns.store, ns.bind, ns.port)
    except (OSError, OverflowError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        print(f"faultline serve: cannot listen on {ns.bind}:{ns.port}: {reason}", file=sys.stderr)
        return 3
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"serving {ns.store.resolve()} at http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _report(args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="faultline report", description="re-render the report of a stored run")
    p.add_argument("run_dir", type=Path, help="run folder, e.g. store/<test>/<time>-<seed>")
    p.add_argument("--index", action="store_true", help="also re-render the store's index.html")
    ns = p.parse_args(args)
    from reports.render import ReportError, render_run

    try:
        out = render_run(ns.run_dir)
    except ReportError as exc:
        print(f"faultline report: {exc}", file=sys.stderr)
        return 3
    print(out)
    if ns.index:
        from reports.index import render_index

        # store/<test>/<run>: the store is two levels up
        print(render_index(ns.run_dir.resolve().parent.parent))
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("serve", "report"):
        print("usage: faultline serve|report ...", file=sys.stderr)
        return 3
    return _serve(argv[1:]) if argv[0] == "serve" else _report(argv[1:])
