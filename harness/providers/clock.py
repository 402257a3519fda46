"""Each node's own clock: libfaketime in the node's process, driven by an append-only clock log.

A provider that can fault clocks starts each node under libfaketime (Debian's faketime
package, its thread-safe build libfaketimeMT) with the environment of `clock_env`: both the
wall clock and the monotonic clock of the process are faked, and the clock agent that
sitecustomize starts in it (harness/faketime_site/faultline_clock.py) applies every operation
the provider appends to the node's clock log, at once and in order. What the agent applied is
in ``<log>.applied`` (`ClockState`), so the run can say what each node's clock was.

The operations (Jepsen's clock faults): `reset` (true time, rate 1), `jump` (step forward or
back), `rate` (run faster or slower from now on, without a step), `offset` (true time plus a
fixed offset). libfaketime scales the timeouts of poll/select/epoll, sleeps and the condition
waits of Python's GIL by the rate, so a node at rate 2 also waits half as long in real time;
it hangs the timed waits of Python's locks (sem_clockwait is not intercepted), which the node
therefore does not use (docs/benchmarks.md, "Faked monotonic time").

This module knows the formats; `LocalClocks` keeps the logs of nodes on this machine (local,
netns), harness.providers.remote_clock those on hosts reached through a Remote (ssh, docker).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.faketime_site.faultline_clock import (
    HEADER,
    MAX_RATE,
    MIN_RATE,
    OPS,
    Anchor,
    parse_anchor,
)
from harness.protocols import HarnessError

#: The thread-safe build: its clock reads are serialised, so a FAKETIME change the agent
#: makes is never half-read by another thread.
LIBFAKETIME_NAME = "libfaketimeMT.so.1"
#: Where Debian installs it, any architecture.
LIBFAKETIME_GLOB = f"/usr/lib/*/faketime/{LIBFAKETIME_NAME}"
SHIM_DIR = Path(__file__).resolve().parents[1] / "faketime_site"
#: Bounds of a rate a fault may ask for (the agent accepts a wider range).
RATE_RANGE = (0.01, 100.0)
assert MIN_RATE <= RATE_RANGE[0] and RATE_RANGE[1] <= MAX_RATE


def asked_for(test: Mapping[str, object]) -> bool:
    """Does the test ask for faults that move clocks? Providers set clock control up (and
    probe libfaketime, which costs seconds) only then."""
    from harness.nemesis import registry  # lazily: the registry imports every fault family

    nemesis = test.get("nemesis")
    faults = nemesis.get("faults") if isinstance(nemesis, Mapping) else None
    return registry.moves_clocks([str(f) for f in faults or []])


def find_libfaketime() -> str | None:
    for cand in (f"/usr/lib/x86_64-linux-gnu/faketime/{LIBFAKETIME_NAME}",
                 f"/usr/lib/aarch64-linux-gnu/faketime/{LIBFAKETIME_NAME}"):
        if Path(cand).exists():
            return cand
    found = sorted(glob.glob(LIBFAKETIME_GLOB))
    return found[0] if found else None


def clock_env(lib: str, log_path: str, shim_dir: str) -> dict[str, str]:
    """The environment of a node process whose clocks follow the clock log at log_path."""
    return {
        "LD_PRELOAD": lib,
        "FAKETIME": "+0 x1",  # true time until the agent installs the node's clock
        "FAKETIME_NO_CACHE": "1",  # re-read FAKETIME at every clock read: changes act at once
        "FAKETIME_FMT": "%s",  # the agent's '@<epoch seconds> x<rate>' specs
        "NO_FAKE_STAT": "1",  # file times stay true (Python's bytecode cache compares them)
        "FAULTLINE_CLOCK_LOG": log_path,
        "PYTHONPATH": shim_dir,  # sitecustomize starts the agent
    }


@dataclass(frozen=True)
class ClockOp:
    """One change of a node's clock; `value` is seconds (jump, offset) or a factor (rate)."""

    kind: str
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in OPS:
            raise HarnessError(f"clock: unknown operation {self.kind!r} (expected one of {', '.join(OPS)})")
        if self.value != self.value or abs(self.value) == float("inf"):
            raise HarnessError(f"clock: {self.kind} needs a finite number, got {self.value}")
        if self.kind == "rate" and not RATE_RANGE[0] <= self.value <= RATE_RANGE[1]:
            raise HarnessError(f"clock: rate must be within [{RATE_RANGE[0]:g}, {RATE_RANGE[1]:g}], got {self.value}")

    def line(self) -> str:
        return "reset\n" if self.kind == "reset" else f"{self.kind} {self.value!r}\n"


#: What a run folder keeps of each node's clock (nodes/<node>/...): the operations the
#: provider appended, and what the node's clock agent applied, when (real time), with which
#: clock value and rate (one `<nonce> <applied> <real> <clock> <rate>` line per change).
COLLECTED = {"": "clock.log", ".applied": "clock.applied"}


def reset() -> ClockOp:
    return ClockOp("reset")


def set_ops(offset_s: float, rate: float) -> list[ClockOp]:
    """The operations that make a clock true time + offset_s, running at rate from now on."""
    return [ClockOp("offset", offset_s), ClockOp("rate", rate)]


def log_header() -> str:
    """The first line of a fresh clock log; its nonce tells a restarted agent whether the
    clock it remembers (in <log>.applied) belongs to this log."""
    return f"{HEADER} {secrets.token_hex(6)}\n"


@dataclass(frozen=True)
class ClockState:
    """A node's clock as its agent last set it: `clock + (t - real) * rate` at real time t."""

    applied: int  # operations of the log applied
    real: float
    clock: float
    rate: float

    def offset_at(self, t: float) -> float:
        """How far the node's clock is ahead of true time at real time t."""
        return self.clock + (t - self.real) * self.rate - t


def state_from_applied(text: str, header: str) -> ClockState | None:
    """The last state recorded in a <log>.applied for the log whose header is `header`."""
    nonce = header.split()[-1]
    for line in reversed(text.splitlines()):
        a: Anchor | None = parse_anchor(line)
        if a is not None and a.nonce == nonce:
            return ClockState(a.applied, a.real, a.clock, a.rate)
    return None


# The probe: a Python program run under clock_env with a log asking for offset +1000 s and
# rate 2. It checks what a node relies on: the agent started, both clocks moved, a poll wait
# and a sleep scale with the rate, and a thread can take the GIL from a busy one (libfaketime
# rewrites the GIL's pthread_cond_timedwait; a wrong rewrite hangs it). Exit 0 or one line.
PROBE_OPS = [ClockOp("offset", 1000.0), ClockOp("rate", 2.0)]
PROBE = r"""
import select, sys, threading, time
import faultline_clock as fc
def fail(msg):
    print(msg); sys.exit(4)
if fc.active() is None:
    fail("the clock agent did not start (sitecustomize not loaded)")
off = time.time() - fc.real_time()
if not 990 < off < 1010:
    fail(f"the wall clock is {off:+.1f} s off true time, not +1000 s")
if abs(time.monotonic() - time.time()) > 5:
    fail("the monotonic clock is not faked")
# unscaled, these would take twice as long; the margins are for a loaded machine
r0, m0 = fc.real_time(), time.monotonic()
select.select([], [], [], 0.4)
real, fake = fc.real_time() - r0, time.monotonic() - m0
if not (0.15 < real < 0.32 and fake > 0.39):
    fail(f"a 0.4 s wait at rate 2 took {real:.3f} s ({fake:.3f} s of its own clock)")
r0 = fc.real_time(); time.sleep(0.2); real = fc.real_time() - r0
if not 0.07 < real < 0.16:
    fail(f"a 0.2 s sleep at rate 2 took {real:.3f} s")
stop = []
def spin():
    while not stop:
        pass
t = threading.Thread(target=spin)
t.start()
r0 = fc.real_time(); select.select([], [], [], 0.02); stop.append(1); real = fc.real_time() - r0
t.join()
if real > 1.0:
    fail(f"taking the GIL from a busy thread took {real:.1f} s")
"""
PROBE_TIMEOUT = 10.0


def probe_verdict(exit_code: int | None, stdout: str, stderr: str, lib: str) -> str | None:
    """None if the probe passed, else why clock faults cannot be used (one line)."""
    if exit_code is None:
        return f"{lib} hangs a Python program's waits (probe killed after {PROBE_TIMEOUT:.0f} s)"
    if exit_code == 0:
        return None
    lines = (stdout.strip() or stderr.strip() or "?").splitlines()
    return f"{lib}: {lines[-1]}"


class LocalClocks:
    """The clock logs of nodes whose processes run on this machine (local and netns providers)."""

    def __init__(self, folder: Path, lib: str) -> None:
        self.folder = folder
        self.lib = lib
        self._headers: dict[str, str] = {}

    def log_path(self, node: str) -> Path:
        return self.folder / f"{node}.clock"

    def env(self, node: str) -> dict[str, str]:
        return clock_env(self.lib, str(self.log_path(node)), str(SHIM_DIR))

    def init(self, node: str) -> None:
        """A fresh log: the node's clock is true time until operations are appended."""
        self.folder.mkdir(parents=True, exist_ok=True)
        header = log_header()
        path = self.log_path(node)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(header)
        os.replace(tmp, path)
        self._headers[node] = header

    def append(self, node: str, ops: Sequence[ClockOp]) -> None:
        if node not in self._headers:
            raise HarnessError(f"clock: no clock log for node {node!r}")
        # one write: the agent reads the operations of one change together, never half of one
        data = "".join(op.line() for op in ops).encode()
        fd = os.open(self.log_path(node), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def state(self, node: str) -> ClockState | None:
        header = self._headers.get(node)
        if header is None:
            return None
        try:
            text = Path(str(self.log_path(node)) + ".applied").read_text()
        except OSError:
            return None
        return state_from_applied(text, header)

    def collect(self, node: str, dest: Path) -> None:
        """Copy the node's clock log and its agent's record into dest (COLLECTED names)."""
        dest.mkdir(parents=True, exist_ok=True)
        for suffix, name in COLLECTED.items():
            src = Path(str(self.log_path(node)) + suffix)
            if src.is_file():
                shutil.copyfile(src, dest / name)

    def probe(self, extra_env: Mapping[str, str] | None = None) -> str | None:
        """None if a node's Python runs right under the library here, else why not."""
        self.init("probe")
        self.append("probe", PROBE_OPS)
        env = {**os.environ, **self.env("probe"), **(extra_env or {})}
        try:
            p = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                               timeout=PROBE_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return probe_verdict(None, "", "", self.lib)
        finally:
            for suffix in ("", ".applied"):
                Path(str(self.log_path("probe")) + suffix).unlink(missing_ok=True)
            self._headers.pop("probe", None)
        return probe_verdict(p.returncode, p.stdout, p.stderr, self.lib)
