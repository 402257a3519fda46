"""What libfaketime does to each kind of timed wait of a Python program (faked monotonic clock).

Each case runs in its own child process under LD_PRELOAD=libfaketime with a control file
(FAKETIME_TIMESTAMP_FILE, FAKETIME_NO_CACHE=1) and the monotonic clock faked. The child asks
for a wait of D seconds of its own (faked) time and reports the real seconds it took (read
with a raw clock_gettime system call, which libfaketime does not intercept) and the faked
seconds its time.monotonic() saw. At rate r a correct wait takes D / r real seconds. A child
that has not finished after a bound is killed and reported as hanging.

    .venv/bin/python bench/faketime_waits.py [--seconds 0.2] [--rates 1,2,0.5,4,0.25]
                                             [--jump 120] [--cases sleep,epoll,...]

With --jump S, each case also runs at rate 1 while the control file's offset moves by +S and
then -S seconds 50 ms into the wait (an in-flight wait across a clock step).

Prints a Markdown table (docs/benchmarks.md, "Faked monotonic time").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.providers.clock import find_libfaketime  # noqa: E402

# The child: one case, one wait, a JSON line on stdout. Kept as source text so each case gets
# a fresh process (a hung wait cannot take the others with it).
CHILD = r'''
import ctypes, json, os, queue, select, selectors, socket, sys, threading, time
import concurrent.futures as cf

SYS_CLOCK_GETTIME = {"x86_64": 228, "aarch64": 113}[os.uname().machine]
_libc = ctypes.CDLL(None, use_errno=True)  # the global namespace: libfaketime's symbols first
_syscall = ctypes.CDLL("libc.so.6", use_errno=True).syscall

class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

def real_mono():
    ts = Timespec()
    _syscall(SYS_CLOCK_GETTIME, 1, ctypes.byref(ts))
    return ts.tv_sec + ts.tv_nsec / 1e9

def ts_of(x):
    return Timespec(int(x), int((x - int(x)) * 1e9))

def c_clock(clk):
    ts = Timespec()
    _libc.clock_gettime(clk, ctypes.byref(ts))
    return ts.tv_sec + ts.tv_nsec / 1e9

D = float(sys.argv[2])
case = sys.argv[1]

def busy_gil(d):
    # a CPU-bound thread holds the GIL; the waiting thread must take it through the GIL's
    # timed condition wait (pthread_cond_timedwait on CLOCK_MONOTONIC) after its select
    a, b = socket.socketpair()
    stop = [False]
    def spin():
        while not stop[0]:
            pass
    t = threading.Thread(target=spin, daemon=True)
    t.start()
    time.sleep(0)  # let it run
    select.select([a], [], [], d)
    stop[0] = True

def cond_timedwait(d):
    # pthread_cond_timedwait directly, on a CLOCK_MONOTONIC condition variable
    attr = ctypes.create_string_buffer(64)
    cond = ctypes.create_string_buffer(128)
    mutex = ctypes.create_string_buffer(128)
    _libc.pthread_condattr_init(attr)
    _libc.pthread_condattr_setclock(attr, 1)
    _libc.pthread_cond_init(cond, attr)
    _libc.pthread_mutex_init(mutex, None)
    _libc.pthread_mutex_lock(mutex)
    r = _libc.pthread_cond_timedwait(cond, mutex, ctypes.byref(ts_of(c_clock(1) + d)))
    _libc.pthread_mutex_unlock(mutex)
    if r not in (110,):  # ETIMEDOUT
        raise OSError(r, "pthread_cond_timedwait")

def sem_timedwait(d):
    sem = ctypes.create_string_buffer(64)
    _libc.sem_init(sem, 0, 0)
    r = _libc.sem_timedwait(sem, ctypes.byref(ts_of(c_clock(0) + d)))
    if r != -1 or ctypes.get_errno() != 110:
        raise OSError(ctypes.get_errno(), "sem_timedwait")

def sem_clockwait(d):
    sem = ctypes.create_string_buffer(64)
    _libc.sem_init(sem, 0, 0)
    r = _libc.sem_clockwait(sem, 1, ctypes.byref(ts_of(c_clock(1) + d)))
    if r != -1 or ctypes.get_errno() != 110:
        raise OSError(ctypes.get_errno(), "sem_clockwait")

def nanosleep(d):
    _libc.nanosleep(ctypes.byref(ts_of(d)), None)

def clock_nanosleep_rel(d):
    _libc.clock_nanosleep(1, 0, ctypes.byref(ts_of(d)), None)

def ppoll(d):
    a, b = socket.socketpair()
    class Pollfd(ctypes.Structure):
        _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]
    p = Pollfd(a.fileno(), 1, 0)
    _libc.ppoll(ctypes.byref(p), 1, ctypes.byref(ts_of(d)), None)

def sock_timeout(d):
    a, b = socket.socketpair()
    a.settimeout(d)
    try:
        a.recv(1)
    except TimeoutError:
        pass

def epoll(d):
    a, b = socket.socketpair()
    ep = select.epoll()
    ep.register(a.fileno(), select.EPOLLIN)
    ep.poll(d)

def poll(d):
    a, b = socket.socketpair()
    p = select.poll()
    p.register(a.fileno(), select.POLLIN)
    p.poll(d * 1000)

def select_(d):
    a, b = socket.socketpair()
    select.select([a], [], [], d)

def selector(d):
    a, b = socket.socketpair()
    s = selectors.DefaultSelector()
    s.register(a, selectors.EVENT_READ)
    s.select(d)

def join(d):
    t = threading.Thread(target=lambda: threading.Event().wait())  # never ends
    t.daemon = True
    t.start()
    t.join(d)

def future(d):
    try:
        cf.Future().result(timeout=d)
    except cf.TimeoutError:
        pass

def qget(d):
    try:
        queue.Queue().get(timeout=d)
    except queue.Empty:
        pass

CASES = {
    "time.sleep": lambda d: time.sleep(d),
    "nanosleep": nanosleep,
    "clock_nanosleep-rel": clock_nanosleep_rel,
    "select.select": select_,
    "select.poll": poll,
    "select.epoll": epoll,
    "selectors": selector,
    "ppoll": ppoll,
    "socket-timeout": sock_timeout,
    "Lock.acquire": lambda d: (lambda lk: (lk.acquire(), lk.acquire(timeout=d)))(threading.Lock()),
    "Event.wait": lambda d: threading.Event().wait(d),
    "Condition.wait": lambda d: (lambda c: (c.acquire(), c.wait(d), c.release()))(threading.Condition()),
    "Queue.get": qget,
    "Future.result": future,
    "Thread.join": join,
    "sem_timedwait": sem_timedwait,
    "sem_clockwait": sem_clockwait,
    "pthread_cond_timedwait": cond_timedwait,
    "GIL-handoff": busy_gil,
}
fn = CASES[case]
print("ready", flush=True)
sys.stdin.readline()  # the parent may move the clock meanwhile
r0, f0 = real_mono(), time.monotonic()
err = None
try:
    fn(D)
except Exception as e:
    err = f"{type(e).__name__}: {e}"
r1, f1 = real_mono(), time.monotonic()
print(json.dumps({"real": r1 - r0, "fake": f1 - f0, "err": err}), flush=True)
'''

def spec(offset_s: float, rate: float) -> str:
    """libfaketime's relative spec: the faked clock is offset_s ahead, running at rate."""
    return f"{offset_s:+f} x{rate:f}"


def control_env(lib: str, ctl: Path) -> dict[str, str]:
    """libfaketime with a control file re-read at every call, monotonic clock faked too."""
    return {"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": str(ctl), "FAKETIME_NO_CACHE": "1"}


CASES = [
    "time.sleep", "nanosleep", "clock_nanosleep-rel", "select.select", "select.poll", "select.epoll",
    "selectors", "ppoll", "socket-timeout", "Lock.acquire", "Event.wait", "Condition.wait", "Queue.get",
    "Future.result", "Thread.join", "sem_timedwait", "sem_clockwait", "pthread_cond_timedwait", "GIL-handoff",
]


def run_case(case: str, d: float, env: dict[str, str] | None, ctl: Path | None, line: str,
             jump: float = 0.0) -> str:
    """One cell of the table: the real seconds (and what was wrong) for a wait of d faked s."""
    if ctl is not None:
        ctl.write_text(line + "\n")
    full = {**os.environ, **(env or {})}
    p = subprocess.Popen([sys.executable, "-c", CHILD, case, str(d)], env=full, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdin is not None and p.stdout is not None
    try:
        if p.stdout.readline().strip() != "ready":
            return "crash: " + (p.stderr.read() if p.stderr else "").strip().splitlines()[-1:][0]
        p.stdin.write("go\n")
        p.stdin.flush()
        if jump and ctl is not None:
            time.sleep(0.05)
            ctl.write_text(spec(jump, 1.0) + "\n")
        out, err = p.communicate(timeout=3.0 + 10 * d)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return "HANG"
    finally:
        if ctl is not None:
            ctl.write_text(line + "\n")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        return "crash: " + ((err.strip().splitlines() or ["?"])[-1])
    res = json.loads(lines[-1])
    cell = f"{res['real']:.3f} ({res['fake']:+.3f})"
    if res["err"]:
        cell += f" {res['err']}"
    return cell


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=0.2, help="faked seconds each wait asks for")
    ap.add_argument("--rates", default="1,2,0.5,4,0.25")
    ap.add_argument("--jump", type=float, default=120.0, help="offset step during a rate-1 wait (0: none)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--no-monotonic-fix", action="store_true",
                    help="FAKETIME_FORCE_MONOTONIC_FIX=0 (libfaketime's default on glibc >= 2.30 is on)")
    args = ap.parse_args()
    lib = find_libfaketime()
    if lib is None:
        print("libfaketime is not installed (Debian package libfaketime)", file=sys.stderr)
        return 2
    d = args.seconds
    rates = [float(r) for r in args.rates.split(",")]
    cases = args.cases.split(",")
    with tempfile.TemporaryDirectory(prefix="fl-ftw-") as tmp:
        ctl = Path(tmp) / "clock.rc"
        env = control_env(lib, ctl)
        if args.no_monotonic_fix:
            env["FAKETIME_FORCE_MONOTONIC_FIX"] = "0"
        heads = ["wait", "no preload"] + [f"x{r:g}" for r in rates]
        if args.jump:
            heads += [f"+{args.jump:g} s mid-wait", f"-{args.jump:g} s mid-wait"]
        print(f"Each cell: real seconds for a wait of {d:g} s of the process's own time "
              f"(in parentheses: the faked time.monotonic() elapsed). Correct at rate r: {d:g}/r.\n")
        print("| " + " | ".join(heads) + " |")
        print("|" + "---|" * len(heads))
        for case in cases:
            row = [case, run_case(case, d, None, None, "")]
            for r in rates:
                row.append(run_case(case, d, env, ctl, spec(0.0, r)))
            if args.jump:
                for j in (args.jump, -args.jump):
                    row.append(run_case(case, d, env, ctl, spec(0.0, 1.0), jump=j))
            print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
