"""The clock agent of a node process that runs under libfaketime (started by sitecustomize).

The provider appends clock operations to the node's clock log (the file named by
FAULTLINE_CLOCK_LOG); this agent, a thread in the node process, applies each one at once and
in order by rewriting libfaketime's FAKETIME variable in its own process, and appends what it
applied (real time, clock value, rate) to ``<log>.applied``. Both the wall clock and the
monotonic clock of the process follow (libfaketime fakes both from one spec).

Why a thread in the process and not a control file the provider writes: libfaketime computes
``+offset xrate`` from the moment the library was loaded, so a rate change written from outside
steps the clock by (rate change) x (process age), and the provider cannot know that moment. The
``@<time> xrate`` spec restarts libfaketime's reference at the moment it is parsed; here that
is the agent's own next clock read, microseconds after it read the real clock, so each change
is exact. Keeping the spec in the environment (FAKETIME_NO_CACHE=1 re-reads it at every call)
also spares every clock read of the node the file read a control file costs.

The log: a header line ``faultline-clock 1 <nonce>``, then one operation a line:
``reset`` (true time, rate 1), ``jump <seconds>`` (step by seconds), ``rate <r>`` (run at r
from now on, no step), ``offset <seconds>`` (true time + seconds, rate unchanged). A restarted
process continues the clock from the last line of ``<log>.applied`` when it carries the same
nonce, then applies the operations it has not seen: a node's clock outlives its process, as
a machine's does. Standard library only: it runs in the node's Python on any host.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import struct
import sys
import threading
import time
from dataclasses import dataclass

HEADER = "faultline-clock 1"
OPS = ("reset", "jump", "rate", "offset")
MIN_RATE, MAX_RATE = 1e-3, 1e3
#: clock_gettime's system call number: libfaketime intercepts the libc function, not this.
_SYS_CLOCK_GETTIME = {"x86_64": 228, "aarch64": 113, "riscv64": 113}
_CLOCK_REALTIME = 0
_IN_CLOSE_WRITE, _IN_MOVED_TO = 0x8, 0x80
_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)
#: What libfaketime leaves in /dev/shm per process (a semaphore, a shared memory object).
_SHM_NAME = re.compile(r"^(?:sem\.)?faketime_(?:sem|shm)_(\d+)$")


class ClockAgentError(Exception):
    """The agent cannot keep the node's clock (one line: what and where)."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_nr = _SYS_CLOCK_GETTIME.get(os.uname().machine)


def real_time() -> float:
    """The host's true wall clock, read past libfaketime."""
    if _nr is None:
        raise ClockAgentError(f"cannot read the real clock on {os.uname().machine} (no clock_gettime number)")
    ts = _Timespec()
    if _libc.syscall(_nr, _CLOCK_REALTIME, ctypes.byref(ts)) != 0:
        raise ClockAgentError(f"clock_gettime system call failed: {os.strerror(ctypes.get_errno())}")
    return ts.tv_sec + ts.tv_nsec * 1e-9


@dataclass
class Anchor:
    """The clock is `clock + (t - real) * rate` at real time t >= real."""

    nonce: str
    applied: int  # log operations applied so far
    real: float
    clock: float
    rate: float

    def at(self, t: float) -> float:
        return self.clock + (t - self.real) * self.rate

    def line(self) -> str:
        return f"{self.nonce} {self.applied} {self.real:.6f} {self.clock:.6f} {self.rate:.9g}\n"


def parse_anchor(line: str) -> Anchor | None:
    parts = line.split()
    if len(parts) != 5:
        return None
    try:
        return Anchor(parts[0], int(parts[1]), float(parts[2]), float(parts[3]), float(parts[4]))
    except ValueError:
        return None


def parse_op(line: str) -> tuple[str, float]:
    """('jump', 5.0) from 'jump 5'; ValueError naming the problem."""
    parts = line.split()
    if not parts or parts[0] not in OPS:
        raise ValueError(f"unknown clock operation {line!r} (expected one of {', '.join(OPS)})")
    if parts[0] == "reset":
        if len(parts) != 1:
            raise ValueError(f"'reset' takes no value: {line!r}")
        return "reset", 0.0
    if len(parts) != 2:
        raise ValueError(f"{parts[0]!r} takes one number: {line!r}")
    value = float(parts[1])
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite number: {line!r}")
    if parts[0] == "rate" and not MIN_RATE <= value <= MAX_RATE:
        raise ValueError(f"rate must be within [{MIN_RATE:g}, {MAX_RATE:g}]: {line!r}")
    return parts[0], value


def step(anchor: Anchor, op: str, value: float, now: float) -> Anchor:
    """The anchor after applying one operation at real time `now`."""
    clock, rate = anchor.at(now), anchor.rate
    if op == "reset":
        clock, rate = now, 1.0
    elif op == "jump":
        clock += value
    elif op == "rate":
        rate = value
    elif op == "offset":
        clock = now + value
    return Anchor(anchor.nonce, anchor.applied + 1, now, clock, rate)


class _LogTail:
    """Reads the clock log as it grows: the provider only appends to it, or replaces it whole
    (by rename, a new inode), so each read starts where the last one ended."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ino: int | None = None
        self.offset = 0
        self.nonce = ""
        self.count = 0  # operation lines read so far

    def _restart(self, ino: int | None) -> None:
        self.ino, self.offset, self.nonce, self.count = ino, 0, "", 0

    def read(self) -> tuple[int, list[str]]:
        """(index of the first new operation, the new operation lines)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self.ino or st.st_size < self.offset:
                    self._restart(st.st_ino)
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:  # not written yet: true time
            self._restart(None)
            return 0, []
        except OSError as e:
            raise ClockAgentError(f"{self.path}: {e.strerror}") from None
        end = data.rfind(b"\n") + 1  # only complete lines: an append may be under way
        lines = data[:end].decode("utf-8", "replace").split("\n")[:-1]
        if self.offset == 0 and lines:
            head = lines.pop(0).split()
            if len(head) != 3 or " ".join(head[:2]) != HEADER:
                raise ClockAgentError(f"{self.path}:1: not a faultline clock log (expected '{HEADER} <nonce>')")
            self.nonce = head[2]
        self.offset += end
        ops = [ln for ln in lines if ln.strip()]
        first = self.count
        self.count += len(ops)
        return first, ops


class ClockAgent:
    def __init__(self, log_path: str) -> None:
        self.log_path = os.path.abspath(log_path)
        self.applied_path = self.log_path + ".applied"
        self.anchor: Anchor | None = None
        self._tail = _LogTail(self.log_path)
        self._lock = threading.Lock()
        self._inotify = -1

    # ---- the log ----

    def _last_applied(self, nonce: str) -> Anchor | None:
        try:
            with open(self.applied_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                tail = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return None
        for line in reversed(tail):
            a = parse_anchor(line)
            if a is not None:
                return a if a.nonce == nonce else None
        return None

    # ---- applying ----

    def sync(self) -> None:
        """Apply every operation of the log not applied yet."""
        with self._lock:
            first, ops = self._tail.read()
            nonce = self._tail.nonce
            now = real_time()
            anchor = self.anchor
            if anchor is None or anchor.nonce != nonce:
                # a fresh process continues the clock its node had; a new log starts true
                anchor = self._last_applied(nonce) if nonce else None
                if anchor is None or anchor.applied > self._tail.count:
                    anchor = Anchor(nonce, 0, now, now, 1.0)
            elif not ops:
                return  # nothing new (an event for the log without a new line)
            for i, line in enumerate(ops, first):
                if i < anchor.applied:
                    continue  # applied by an earlier process of this node
                try:
                    op, value = parse_op(line)
                except ValueError as e:
                    sys.stderr.write(f"faultline clock: {self.log_path}: operation {i + 1}: {e}; skipped\n")
                    anchor = Anchor(anchor.nonce, i + 1, anchor.real, anchor.clock, anchor.rate)
                    continue
                anchor = step(anchor, op, value, now)
                anchor.applied = i + 1
            self._install(anchor)
            if nonce and self.anchor is not None:
                with open(self.applied_path, "a", encoding="utf-8") as f:
                    f.write(self.anchor.line())

    def _install(self, anchor: Anchor) -> None:
        """Point libfaketime at the anchor: '@' restarts its reference at the next clock read,
        which is ours, right now."""
        now = real_time()
        value = anchor.at(now)
        if value < 1.0:
            raise ClockAgentError(f"{self.log_path}: the clock would go before 1970 ({value:.3f})")
        os.environ["FAKETIME"] = f"@{value:.6f} x{anchor.rate:.9f}"
        seen = time.time()  # parses the new spec now
        if abs(seen - anchor.at(real_time())) > 1.0:
            raise ClockAgentError(
                f"libfaketime did not take FAKETIME={os.environ['FAKETIME']!r} (clock reads {seen:.3f}): "
                "is it preloaded with FAKETIME_NO_CACHE=1 and FAKETIME_FMT=%s?"
            )
        self.anchor = Anchor(anchor.nonce, anchor.applied, now, value, anchor.rate)

    # ---- watching ----

    def watch(self) -> None:
        """Start following the log (inotify on its folder) in a daemon thread."""
        folder = os.path.dirname(self.log_path)
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise ClockAgentError(f"inotify_init1: {os.strerror(ctypes.get_errno())}")
        if _libc.inotify_add_watch(fd, os.fsencode(folder), _IN_CLOSE_WRITE | _IN_MOVED_TO) < 0:
            err = os.strerror(ctypes.get_errno())
            os.close(fd)
            raise ClockAgentError(f"{folder}: inotify_add_watch: {err}")
        self._inotify = fd
        self.sync()  # anything appended before the watch began
        threading.Thread(target=self._follow, name="faultline-clock", daemon=True).start()

    def _follow(self) -> None:
        name = os.fsencode(os.path.basename(self.log_path))
        poller = select.poll()
        poller.register(self._inotify, select.POLLIN)
        while True:
            poller.poll()  # no timeout: an untimed wait is immune to the faked clock
            try:
                data = os.read(self._inotify, 65536)
            except BlockingIOError:
                continue
            if not _names(data) & {name}:
                continue
            try:
                self.sync()
            except (ClockAgentError, OSError) as e:
                sys.stderr.write(f"faultline clock: {e}\n")


def _names(data: bytes) -> set[bytes]:
    names, off = set(), 0
    while off + _EVENT.size <= len(data):
        _, _, _, n = _EVENT.unpack_from(data, off)
        names.add(data[off + _EVENT.size : off + _EVENT.size + n].rstrip(b"\0"))
        off += _EVENT.size + n
    return names


def sweep_shm(folder: str = "/dev/shm") -> int:
    """Remove what libfaketime left in /dev/shm for processes that are gone; how many files.

    libfaketime makes a semaphore and a shared memory object for every process it is loaded
    into and removes them when the process exits, but not when it is killed: every crash
    fault would leave two files behind. Each node process clears them as it starts."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for name in names:
        m = _SHM_NAME.match(name)
        if m is None:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue  # another user's live process (or not a pid at all)
        try:
            os.unlink(os.path.join(folder, name))
            removed += 1
        except OSError:
            pass  # gone already, or not ours to remove
    return removed


# One agent per process: the process's libfaketime state is one too.
_agent: ClockAgent | None = None


def start(log_path: str) -> ClockAgent:
    """Apply the log and follow it (once per process)."""
    global _agent
    if _agent is None:
        agent = ClockAgent(log_path)
        agent.watch()
        _agent = agent
        sweep_shm()
    return _agent


def active() -> ClockAgent | None:
    return _agent
