"""Clock control on hosts the controller reaches through a `Remote` (ssh, docker).

As on the local provider, a node runs under libfaketime (Debian's `faketime`) with a control
file it re-reads at every call; a fault rewrites that file. Here the file and the sleep shim
live on the host, written through the remote. Before a host's clock is trusted, a probe runs a
Python program's timed waits under the library there: some libfaketime builds hang them.
"""

from __future__ import annotations

from collections.abc import Mapping

from harness.protocols import Remote
from harness.providers.local import SHIM_DIR, faketime_env, faketime_spec

#: Where Debian installs the library, any architecture.
LIBFAKETIME_GLOB = "/usr/lib/*/faketime/libfaketime.so.1"
#: Timed thread wait, sleep and select: what a node does; some libfaketime builds hang them.
CLOCK_PROBE = (
    "import threading, time, selectors, socket\n"
    "threading.Event().wait(0.05); time.sleep(0.05)\n"
    "a, b = socket.socketpair(); s = selectors.DefaultSelector(); s.register(a, 1); s.select(0.05)\n"
)


def clock_file(base: str, node: str) -> str:
    return f"{base}/clocks/{node}.faketime"


def node_clock_env(lib: str, base: str, node: str) -> dict[str, str]:
    """The local provider's environment, with the control file and shim under `base`."""
    return {**faketime_env(lib, clock_file(base, node)), "PYTHONPATH": f"{base}/faketime_site"}


def write_clock(remote: Remote, base: str, node: str, offset_s: float, rate: float, *, sudo: bool) -> None:
    """Set the node's clock; written then renamed, so a reader never sees half a line."""
    line = faketime_spec(offset_s, rate) + "\n"
    remote.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1.tmp" && mv "$1.tmp" "$1"', "sh",
                clock_file(base, node)], sudo=sudo, stdin=line.encode())


def install_shims(remote: Remote, base: str) -> None:
    for shim in sorted(SHIM_DIR.glob("*.py")):
        remote.upload(shim, f"{base}/faketime_site/{shim.name}")


def probe_clock(remote: Remote, env: Mapping[str, str], python: str, lib: str) -> str | None:
    """None if Python's timed waits work under `lib` on the host, else why not (one line)."""
    # coreutils' timeout kills a hung probe on the host itself; libfaketime is preloaded into
    # the probe only, not into timeout.
    res = remote.run(["timeout", "-k", "2", "5", "env", *(f"{k}={v}" for k, v in env.items()),
                      python, "-c", CLOCK_PROBE], timeout=15, check=False)
    if res.exit_code in (124, 137, -1):  # -1: killed by a signal (no exit status)
        return f"{lib} hangs timed thread waits of Python programs (sem_clockwait)"
    if res.exit_code != 0:
        return f"{lib} breaks Python programs: {(res.stderr.strip().splitlines() or ['?'])[-1]}"
    return None
