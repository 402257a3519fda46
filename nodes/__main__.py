"""``python -m nodes``: run one raftkv node until SIGTERM (see ``--help``)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from nodes.bugs import UnknownBug
from nodes.fdwait import FdEvent
from nodes.options import ConfigError, NodeConfig, build_parser, config_from_args

log = logging.getLogger("nodes")


def _fail(msg: str) -> int:
    sys.stderr.write(f"raftkv: {msg}\n")
    return 2


def _refuse_event(cfg: NodeConfig, reason: str) -> None:
    """Tell the event log why this start was refused (the safety checker judges it: data
    loss after a power failure, the right answer after the disk was corrupted)."""
    from nodes.events import EventLog
    from nodes.recovery import peek_boot

    try:
        events = EventLog(cfg.events, cfg.name, peek_boot(cfg.data_dir))
        events.emit("refuse", reason=reason)
        events.close()
    except OSError as e:
        log.error("could not record the refusal in %s: %s", cfg.events, e)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)  # argparse itself exits 2 with a one-line error
    try:
        cfg = config_from_args(ns)
    except (ConfigError, UnknownBug) as e:
        return _fail(str(e))
    logging.basicConfig(
        level=getattr(logging, cfg.log_level.upper()),
        stream=sys.stderr,
        format=f"%(asctime)s {cfg.name} %(levelname)s %(name)s: %(message)s",
    )
    # imported here so that --help and flag errors work even if the core cannot load
    from nodes.admin import AdminServer
    from nodes.clientserver import ClientServer
    from nodes.node import Node, NodeError
    from nodes.recovery import DataDirBusy, RecoveryError

    # bind the client and admin addresses first: a busy port is a one-line error, before
    # anything touches the data dir
    flag, addr = "--client", cfg.client
    try:
        clients = ClientServer(cfg.client)
        flag, addr = "--admin", cfg.admin
        admin = AdminServer(cfg.admin)
    except OSError as e:
        return _fail(f"{flag} {addr[0]}:{addr[1]}: {e.strerror or e}")
    try:
        node = Node(cfg)
    except DataDirBusy as e:
        return _fail(str(e))
    except RecoveryError as e:
        _refuse_event(cfg, str(e))
        return _fail(f"{cfg.data_dir}: {e}")
    except NodeError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{cfg.data_dir}: {e.strerror or e}")
    clients.attach(node)  # served by the node loop itself
    admin.attach(node)
    node.start()
    # shutdown() waits for a poll interval of the node's clock: seconds at a slow clock rate
    threading.Thread(target=admin.serve_forever, kwargs={"poll_interval": 0.1}, name="admin-server",
                     daemon=True).start()
    done = FdEvent()  # its timed wait polls: right under a faked clock too (nodes/fdwait.py)

    def on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log.info("serving: peers %s, clients %s, admin %s", cfg.listen, cfg.client, cfg.admin)
    while not done.wait(0.5):
        if node.stopped.is_set():
            log.error("node loop stopped unexpectedly")
            admin.shutdown()
            return 1
    log.info("SIGTERM: shutting down")
    admin.shutdown()
    node.stop()
    clients.close()
    admin.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
