"""Each node's own clock (harness/providers/clock.py, harness/faketime_site/faultline_clock.py):
libfaketime in a Python process, driven by an append-only clock log through the clock agent.
Real processes under the real library; each test takes a second or two."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.faketime_site.faultline_clock import real_time
from harness.protocols import HarnessError
from harness.providers.clock import ClockOp, LocalClocks, find_libfaketime, set_ops
from harness.providers.local import LocalProvider

# prints "<real> <wall> <monotonic>" every `step` seconds of real time for `n` steps
SAMPLER = r"""
import select, sys, time
import faultline_clock as fc
n, step = int(sys.argv[1]), float(sys.argv[2])
start = fc.real_time()
for i in range(n):
    print(fc.real_time(), time.time(), time.monotonic(), flush=True)
    while fc.real_time() < start + (i + 1) * step:
        select.select([], [], [], 0.002)
"""


@pytest.fixture
def clocks(tmp_path: Path) -> LocalClocks:
    lib = find_libfaketime()
    if lib is None:
        pytest.skip("needs libfaketime (Debian package libfaketime)")
    c = LocalClocks(tmp_path / "clocks", lib)
    reason = c.probe()
    if reason is not None:
        pytest.skip(f"libfaketime unusable here: {reason}")
    c.init("n1")
    return c


def run_under(clocks: LocalClocks, node: str, *args: str, timeout: float = 20.0,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **clocks.env(node)}
    return subprocess.run([sys.executable, "-c", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=check)


def now_of(clocks: LocalClocks, node: str) -> tuple[float, float, float]:
    """(real, wall, monotonic) as a fresh process of the node reads them."""
    out = run_under(clocks, node, SAMPLER, "1", "0.01").stdout.split()
    real, wall, mono = map(float, out)
    return real, wall, mono


def test_operations_are_checked() -> None:
    with pytest.raises(HarnessError, match="unknown operation 'warp'"):
        ClockOp("warp", 1.0)
    with pytest.raises(HarnessError, match="rate must be within"):
        ClockOp("rate", 0.0)
    with pytest.raises(HarnessError, match="finite"):
        ClockOp("jump", float("inf"))
    assert [op.line() for op in set_ops(-2.5, 0.5)] == ["offset -2.5\n", "rate 0.5\n"]
    assert ClockOp("reset").line() == "reset\n"


def test_offset_moves_wall_and_monotonic_clocks(clocks: LocalClocks) -> None:
    real, wall, mono = now_of(clocks, "n1")
    assert abs(wall - real) < 0.05 and abs(mono - wall) < 0.05  # true time, both clocks
    clocks.append("n1", [ClockOp("offset", 3600.0)])
    real, wall, mono = now_of(clocks, "n1")
    assert abs(wall - real - 3600) < 0.05 and abs(mono - wall) < 0.05
    clocks.append("n1", [ClockOp("jump", -7200.0)])
    real, wall, mono = now_of(clocks, "n1")
    assert abs(wall - real + 3600) < 0.1 and abs(mono - wall) < 0.05


def test_rate_changes_while_running_without_a_step(clocks: LocalClocks) -> None:
    """A running process: rate 3 after ~0.5 s, 0.25 after ~1 s; its clock never steps."""
    env = {**os.environ, **clocks.env("n1")}
    p = subprocess.Popen([sys.executable, "-c", SAMPLER, "75", "0.02"], env=env, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    rows = []
    for line in p.stdout:
        rows.append(tuple(map(float, line.split())))
        if len(rows) == 25:
            clocks.append("n1", [ClockOp("rate", 3.0)])
        elif len(rows) == 50:
            clocks.append("n1", [ClockOp("rate", 0.25)])
    assert p.wait(10) == 0
    for (r0, w0, m0), (r1, w1, m1) in zip(rows, rows[1:], strict=False):
        # between two samples 20 ms apart the clock moves 5-60 ms of its own, never more
        # (a step of the process's age would be seconds) and never back
        assert 0 <= w1 - w0 <= 3.0 * (r1 - r0) + 0.01, (r1 - rows[0][0], w1 - w0, r1 - r0)
        assert abs((m1 - m0) - (w1 - w0)) < 0.005

    def slope(a: int, b: int) -> float:
        return (rows[b][1] - rows[a][1]) / (rows[b][0] - rows[a][0])

    assert slope(2, 22) == pytest.approx(1.0, rel=0.05)
    assert slope(30, 47) == pytest.approx(3.0, rel=0.05)
    assert slope(55, 74) == pytest.approx(0.25, rel=0.05)
    state = clocks.state("n1")
    assert state is not None and state.applied == 2 and state.rate == 0.25


def test_the_clock_outlives_the_process(clocks: LocalClocks) -> None:
    clocks.append("n1", [ClockOp("rate", 0.5)])
    now_of(clocks, "n1")  # a process applies it and ends
    state = clocks.state("n1")
    assert state is not None and state.rate == 0.5
    time.sleep(1.0)
    real, wall, _ = now_of(clocks, "n1")  # a later process continues the same clock
    assert wall - real == pytest.approx(state.offset_at(real), abs=0.02)
    assert wall - real < -0.45
    clocks.init("n1")  # a fresh log: true time again
    real, wall, _ = now_of(clocks, "n1")
    assert abs(wall - real) < 0.05


def test_a_bad_line_is_named_and_skipped(clocks: LocalClocks) -> None:
    with open(clocks.log_path("n1"), "a") as f:
        f.write("warp 9\njump 5\n")
    out = run_under(clocks, "n1", SAMPLER, "1", "0.01")
    real, wall, _ = map(float, out.stdout.split())
    assert abs(wall - real - 5) < 0.05
    assert "operation 1: unknown clock operation 'warp 9'" in out.stderr


def test_an_agent_that_cannot_run_stops_the_process(tmp_path: Path, clocks: LocalClocks) -> None:
    env = {**os.environ, **clocks.env("n1"), "FAULTLINE_CLOCK_LOG": str(tmp_path / "missing" / "n1.clock")}
    p = subprocess.run([sys.executable, "-c", "print('node code ran')"], env=env, capture_output=True,
                       text=True, timeout=20, check=False)
    assert p.returncode == 3 and "node code ran" not in p.stdout
    assert p.stderr.count("\n") == 1 and "missing" in p.stderr and "inotify_add_watch" in p.stderr


def test_local_provider_clocks(tmp_path: Path) -> None:
    if find_libfaketime() is None:
        pytest.skip("needs libfaketime (Debian package libfaketime)")
    off = LocalProvider(tmp_path / "off", clock=False)
    off.setup(["n1"])
    try:
        assert off.node_env("n1") == {}
        with pytest.raises(HarnessError, match="cannot change clocks: clock faults are disabled"):
            off.set_clock("n1", 1.0)
    finally:
        off.teardown()
    on = LocalProvider(tmp_path / "on")
    on.setup(["n1", "n2"])
    try:
        if not on.supports_clock:
            pytest.skip(f"libfaketime unusable here: {on.clock_refusal}")
        on.set_clock("n1", 60.0, 2.0)
        on.change_clock("n2", [ClockOp("jump", -30.0)])
        with pytest.raises(HarnessError, match="unknown node 'n9'"):
            on.change_clock("n9", [ClockOp("reset")])
        assert on.clock_state("n1") is None  # no node process has applied it yet
        env = {**os.environ, **on.node_env("n1")}
        out = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], env=env,
                             capture_output=True, text=True, timeout=20, check=True).stdout
        assert float(out) - real_time() == pytest.approx(60.0, abs=0.1)
        state = on.clock_state("n1")
        assert state is not None and state.rate == 2.0 and state.applied == 2
    finally:
        on.teardown()


def test_what_killed_processes_left_in_dev_shm_is_removed(tmp_path: Path) -> None:
    from harness.faketime_site.faultline_clock import sweep_shm

    gone = subprocess.Popen(["true"])
    gone.wait()
    names = [f"faketime_shm_{gone.pid}", f"sem.faketime_sem_{gone.pid}",  # a killed node's
             f"faketime_shm_{os.getpid()}", f"sem.faketime_sem_{os.getpid()}",  # a live one's
             "faketime_shm_notapid", "other_file"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert sweep_shm(str(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])


def test_the_probe_refuses_a_library_that_leaves_the_monotonic_clock_true(clocks: LocalClocks) -> None:
    reason = clocks.probe({"FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    assert reason is not None and "the monotonic clock is not faked" in reason
