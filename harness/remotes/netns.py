"""A `Remote` for one Linux network namespace on this machine (`ip netns exec NS argv...`).

The namespace shares the controller's filesystem and process table, so it is a `LocalRemote`
whose commands run inside the namespace: uploads and downloads are file copies, and daemons are
children of the controller that it reaps itself (a zombie would otherwise look alive).
`ip netns exec` execs the program after setns, so a daemon's pid is the program's own.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence

from harness.remotes.local import LocalRemote, pid_alive

log = logging.getLogger(__name__)

__all__ = ["NetnsRemote", "pid_alive"]


class NetnsRemote(LocalRemote):
    """Runs commands and daemons inside the network namespace `namespace`; `host` is the node."""

    def __init__(self, host: str, namespace: str) -> None:
        super().__init__(host)
        self.namespace = namespace

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

    def reap(self, timeout: float) -> None:
        """Wait (bounded) for killed daemons to exit so that none is left a zombie."""
        deadline = time.monotonic() + timeout
        for proc in self._daemons.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s: pid %d did not exit", self.host, proc.pid)
