"""The netns provider for real: namespaces, a bridge, iptables partitions, and a clean teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.protocols import HarnessError, Remote
from harness.remotes.netns import pid_alive
from tests.support.env import find_libfaketime, require_binary, require_root

pytestmark = pytest.mark.root

LISTENER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(b'hi'); c.close()\n"
)
DIAL = (
    "import socket,sys\n"
    "try:\n"
    "    c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0)\n"
    "    print(c.recv(2).decode())\n"
    "except OSError as e:\n"
    "    print('error', type(e).__name__); sys.exit(3)\n"
)


def leftovers(run_id: str) -> list[str]:
    """Everything of run `run_id` still present on this machine."""
    found = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line}" for line in ns.splitlines() if run_id in line]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [f"link {line[:60]}" for line in links.splitlines() if run_id in line]
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    found += [f"rule {line}" for line in rules.splitlines() if run_id in line]
    return found


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[tuple[object, dict[str, Remote]]]:
    require_root()
    require_binary("ip", "iptables", "iptables-save")
    from harness.providers.netns import NetnsProvider

    provider = NetnsProvider(tmp_path)
    try:
        remotes = provider.setup(["n1", "n2", "n3"])
        yield provider, remotes
    finally:
        provider.teardown()


def dial(remote: Remote, ip: str, port: int) -> str:
    res = remote.run([sys.executable, "-c", DIAL, ip, str(port)], check=False, timeout=10)
    return res.stdout.strip()


def test_commands_partition_heal_teardown(netns: tuple[object, dict[str, Remote]], tmp_path: Path) -> None:
    from harness.providers.netns import NetnsProvider

    provider, remotes = netns
    assert isinstance(provider, NetnsProvider)
    run_id = provider.run_id
    # Each namespace has its own address on eth0 and loopback up.
    out = remotes["n2"].run(["ip", "-o", "-4", "addr", "show"]).stdout
    assert provider.ip("n2") in out and "127.0.0.1" in out
    assert remotes["n1"].run(["sh", "-c", "exit 4"], check=False).exit_code == 4
    with pytest.raises(HarnessError, match="n1"):
        remotes["n1"].run(["false"])

    port = provider.addresses("n2").client[1]
    pidfile = str(tmp_path / "n2.pid")
    remotes["n2"].start_daemon(
        [sys.executable, "-c", LISTENER, provider.ip("n2"), str(port)],
        pidfile=pidfile, logfile=str(tmp_path / "n2.log"),
    )
    deadline = time.monotonic() + 5
    while dial(remotes["n1"], provider.ip("n2"), port) != "hi" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dial(remotes["n1"], provider.ip("n2"), port) == "hi"
    assert dial(remotes["n3"], provider.ip("n2"), port) == "hi"
    # The controller, in the root namespace, reaches the node over the bridge.
    import socket

    with socket.create_connection((provider.ip("n2"), port), timeout=2) as c:
        assert c.recv(2) == b"hi"

    provider.partition({"n2": {"n1"}})
    assert dial(remotes["n1"], provider.ip("n2"), port) == "error TimeoutError"
    assert dial(remotes["n3"], provider.ip("n2"), port) == "hi"
    provider.heal()
    assert dial(remotes["n1"], provider.ip("n2"), port) == "hi"

    assert remotes["n2"].is_running(pidfile)
    assert remotes["n2"].signal(pidfile, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while remotes["n2"].is_running(pidfile) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not remotes["n2"].is_running(pidfile)
    assert not remotes["n2"].signal(pidfile, signal.SIGTERM)

    remotes["n3"].start_daemon(["sleep", "300"], pidfile=str(tmp_path / "s.pid"),
                               logfile=str(tmp_path / "s.log"))
    provider.partition({"n1": {"n2", "n3"}})
    assert leftovers(run_id)
    provider.teardown()
    assert leftovers(run_id) == []
    sleeper = int((tmp_path / "s.pid").read_text())
    assert not pid_alive(sleeper)


def test_cleanup_leftovers_of_a_crashed_run(tmp_path: Path) -> None:
    require_root()
    require_binary("ip", "iptables")
    from harness.providers import netns as mod

    crashed = mod.NetnsProvider(tmp_path)
    try:
        crashed.setup(["n1", "n2"])
        # A controller that died: the marker names a pid that no longer exists.
        dead = subprocess.Popen(["true"])
        dead.wait()
        (mod.MARKER_DIR / crashed.run_id).write_text(f"{dead.pid}\n")
        assert leftovers(crashed.run_id)
        live = mod.NetnsProvider(tmp_path / "live")
        try:
            live.setup(["n1"])  # setup cleans up first
            assert leftovers(crashed.run_id) == []
            assert leftovers(live.run_id)  # and does not touch a live run
        finally:
            live.teardown()
        assert leftovers(live.run_id) == []
    finally:
        crashed.teardown()


def test_clock_control_file(tmp_path: Path) -> None:
    require_root()
    from harness.providers.netns import NetnsProvider

    if find_libfaketime() is None:
        pytest.skip("needs libfaketime (Debian package faketime)")
    provider = NetnsProvider(tmp_path, clock=True)
    try:
        remotes = provider.setup(["n1", "n2"])
        if not provider.supports_clock:
            with pytest.raises(HarnessError, match="cannot change clocks"):
                provider.set_clock("n1", 3600.0)
            pytest.skip(f"libfaketime unusable here: {provider.clock_refusal}")
        check_clock(provider, remotes)
    finally:
        provider.teardown()


def check_clock(provider: Any, remotes: dict[str, Remote]) -> None:
    provider.set_clock("n1", 3600.0)
    script = "import time; print(time.time())"
    skewed = float(remotes["n1"].run([sys.executable, "-c", script], env=provider.node_env("n1")).stdout)
    plain = float(remotes["n2"].run([sys.executable, "-c", script], env=provider.node_env("n2")).stdout)
    assert 3590 < skewed - plain < 3610
    with pytest.raises(HarnessError, match="rate"):
        provider.set_clock("n1", 0.0, rate=0)


def test_needs_root_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.providers.netns import NetnsProvider

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(HarnessError, match="needs root"):
        NetnsProvider(tmp_path).setup(["n1"])


UDP_COUNT = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2])))\n"
    "print('ready', flush=True); s.settimeout(10.0); n=0\n"
    "try:\n"
    "    while True:\n"
    "        if s.recv(64) == b'end': break\n"
    "        n+=1\n"
    "except OSError: pass\n"
    "print('count', n, flush=True)\n"
)
UDP_SEND = (
    "import socket,sys,time\n"
    "s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "for i in range(int(sys.argv[3])):\n"
    "    s.sendto(b'x', (sys.argv[1], int(sys.argv[2]))); time.sleep(0.002)\n"
    "time.sleep(0.3)\n"
    "for _ in range(50):\n"
    "    s.sendto(b'end', (sys.argv[1], int(sys.argv[2]))); time.sleep(0.01)\n"
)


def datagrams_through(provider: Any, remotes: dict[str, Remote], src: str, dst: str, n: int, tmp: Path) -> int:
    """Send `n` paced datagrams src -> dst; how many dst received."""
    port = provider.addresses(dst).client[1]
    tag = f"udp-{src}-{dst}-{len(list(tmp.glob('udp-*.log')))}"
    log, pidfile = tmp / f"{tag}.log", str(tmp / f"{tag}.pid")
    remotes[dst].start_daemon([sys.executable, "-c", UDP_COUNT, provider.ip(dst), str(port)],
                              pidfile=pidfile, logfile=str(log))  # fmt: skip
    deadline = time.monotonic() + 5
    while "ready" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    remotes[src].run([sys.executable, "-c", UDP_SEND, provider.ip(dst), str(port), str(n)], timeout=30)
    deadline = time.monotonic() + 15
    while "count" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    remotes[dst].signal(pidfile, signal.SIGKILL)
    return int(log.read_text().split("count")[1].split()[0])


def test_link_loss_drops_packets_per_direction(netns: tuple[object, dict[str, Remote]], tmp_path: Path) -> None:
    from harness.net.linkcond import LinkConditions
    from harness.providers.netns import LINK_CHAIN, NetnsProvider

    provider, remotes = netns
    assert isinstance(provider, NetnsProvider)
    loss = LinkConditions(loss=0.5, unit="packet")
    provider.set_link_conditions("f1", {("n1", "n2"): loss}, seed=0)
    got = datagrams_through(provider, remotes, "n1", "n2", 400, tmp_path)
    assert 120 < got < 280, got  # half of 400, far inside the binomial spread
    assert datagrams_through(provider, remotes, "n2", "n1", 400, tmp_path) >= 396  # the other direction
    # a partition and its heal leave the link's loss alone (chains of their own)
    provider.partition({"n2": {"n3"}})
    provider.heal()
    assert "statistic" in remotes["n2"].run(["iptables", "-w", "-S", LINK_CHAIN]).stdout
    done = provider.clear_link_conditions("f1")
    assert done["links"] == [["n1", "n2"]]
    # the rule counted what it dropped (the 'end' markers too)
    assert done["packets_dropped"] >= 400 - got
    assert "statistic" not in remotes["n2"].run(["iptables", "-w", "-S", LINK_CHAIN]).stdout
    assert datagrams_through(provider, remotes, "n1", "n2", 200, tmp_path) >= 198
    assert provider.clear_link_conditions() == {}
    with pytest.raises(HarnessError, match="netem"):
        provider.set_link_conditions("f2", {("n1", "n2"): LinkConditions(delay_ms=10, unit="packet")}, seed=0)
    run_id = provider.run_id
    provider.teardown()
    assert leftovers(run_id) == []
