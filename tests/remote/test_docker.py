"""The docker provider for real, and its one-line refusal where no engine runs.

The real tests start their own Docker engine (Debian's docker.io): dockerd with a data root,
exec root, socket, pid file and address pool of the test's own, the vfs storage driver, and no
changes to the host's firewall, bridge or forwarding. The node image is built from the host
(no pull). Afterwards no container, network or image tag of ours remains, dockerd is stopped
by its pid and its directories are removed.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.protocols import HarnessError, RemoteError
from tests.support.env import find_libfaketime, procs_naming, require_binary, require_root
from tests.support.raftkv_scenario import eventually, partition_heal_kill_restart

NODES = ["n1", "n2", "n3"]
#: The test engines' address range: the project's, apart from the netns provider's 10.77/16.
ADDRESS_RANGE = "10.78.0.0/16"
LISTENER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16)\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(b'hi'); c.close()\n"
)
DIAL = (
    "import socket,sys\n"
    "try:\n"
    "    c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0)\n"
    "    print(c.recv(2).decode())\n"
    "except OSError as e:\n"
    "    print('error', type(e).__name__)\n"
)


@dataclass
class Engine:
    """A dockerd of the test's own."""

    host: str  # the socket, as `docker -H` takes it
    base: Path


def _free_pool() -> str:
    """A /20 of ADDRESS_RANGE that no host address is in, as dockerd's address pool, so an engine
    started while another test's engine has networks does not give its bridges their subnet."""
    import ipaddress

    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    used = [ipaddress.ip_interface(f.split()[3]).network for f in out.splitlines() if len(f.split()) > 3]
    for pool in ipaddress.ip_network(ADDRESS_RANGE).subnets(new_prefix=20):
        if not any(pool.overlaps(net) for net in used):
            return f"base={pool},size=24"
    pytest.skip(f"no free /20 in {ADDRESS_RANGE} for the test's Docker engine")


def _dockerd_failure(log: Path) -> str:
    """The line of dockerd's log that says why it stopped (or its last line)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    bad = [ln for ln in lines if "level=fatal" in ln or "level=error" in ln or "failed to start" in ln]
    return (bad or lines or ["(no output)"])[-1].strip()


def _stop_dockerd(proc: subprocess.Popen[bytes], base: Path) -> list[str]:
    """Stop the engine by its pid, then what it left; returns what could not be removed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    # containerd and its shims are children of this dockerd: their command lines name `base`.
    for pid in procs_naming(str(base)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()
              if ln.split()[1].startswith(str(base))]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", str(base)], capture_output=True, check=False, timeout=120)
    left = [f"process {pid}" for pid in procs_naming(str(base))]
    return left + ([f"dir {base}"] if base.exists() else [])


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    require_root()
    require_binary("dockerd", "containerd", "runc", "docker", "iptables", "ldd")
    base = Path(tempfile.mkdtemp(prefix="fl-docker-"))
    # containerd namespaces allow only [A-Za-z0-9] runs joined by single . _ or -, which a
    # mkdtemp suffix (it may hold or end with "_") does not always give
    tag = f"fl-docker-{secrets.token_hex(4)}"
    (base / "daemon.json").write_text("{}\n")  # not the host's /etc/docker/daemon.json
    log = base / "dockerd.log"
    argv = [
        "dockerd", "--config-file", str(base / "daemon.json"),
        "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
        "--pidfile", str(base / "dockerd.pid"), "-H", f"unix://{base / 'docker.sock'}",
        "--containerd-namespace", tag, "--containerd-plugins-namespace", f"{tag}-plugins",
        "--storage-driver", "vfs", "--default-address-pool", _free_pool(),
        # Leave the host's firewall, forwarding and default bridge alone.
        "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    left: list[str] = []
    try:
        from harness.providers.docker import DockerCLI, engine_problem

        docker = DockerCLI(host=f"unix://{base / 'docker.sock'}")
        deadline = time.monotonic() + 30
        while engine_problem(docker) is not None:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the Docker engine cannot run here: {_dockerd_failure(log)}")
            time.sleep(0.2)
        yield Engine(docker.host or "", base)
    finally:
        left = _stop_dockerd(proc, base)
    assert left == [], f"the test's dockerd left {left}"


def ours(engine: Engine) -> list[str]:
    """Containers, networks and built image tags of the provider still known to the engine."""
    from harness.providers.docker import BUILT_IMAGE_REPO, LABEL, DockerCLI

    docker = DockerCLI(host=engine.host)
    label = ["--filter", f"label={LABEL}"]
    found = [f"container {n}" for n in docker(["ps", "-a", *label, "--format", "{{.Names}}"]).stdout.decode().split()]
    found += [f"network {n}" for n in docker(["network", "ls", *label, "--format", "{{.Name}}"]).stdout.decode().split()]
    images = docker(["images", "--format", "{{.Repository}}:{{.Tag}}", BUILT_IMAGE_REPO]).stdout.decode().split()
    return found + [f"image {t}" for t in images]


def host_links(*args: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", *args], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def links_on(bridge: str) -> set[str]:
    return host_links("master", bridge)


@pytest.mark.root
@pytest.mark.slow
def test_containers_run_commands_files_daemons_partitions(engine: Engine, tmp_path: Path) -> None:
    from harness.providers.docker import DockerProvider

    mine: set[str] = set()
    p = DockerProvider({"host": engine.host})
    try:
        remotes = p.setup(NODES)
        assert p.image in p.our_images()  # built here from the host's Python, no pull
        r1, r2 = remotes["n1"], remotes["n2"]
        nasty = "a b'c\"$HOME;`id`; echo pwned"
        assert r1.run(["sh", "-c", 'printf "%s|%s" "$1" "$FL_X"', "sh", nasty], env={"FL_X": nasty}).stdout \
            == f"{nasty}|{nasty}"
        assert r1.run(["cat"], stdin=b"piped").stdout == "piped"
        assert r1.run(["python3", "-c", "import sys; print(sys.version_info[:2])"]).stdout.strip() == "(3, 11)"
        assert r1.run(["sh", "-c", "exit 3"], check=False).exit_code == 3
        with pytest.raises(RemoteError, match="n1"):
            r1.run(["false"])
        assert {p.addresses(n).client[0] for n in NODES} == set(p.ips.values()) and len(set(p.ips.values())) == 3

        payload = bytes(range(256)) * 64
        (tmp_path / "payload.bin").write_bytes(payload)
        r1.upload(tmp_path / "payload.bin", "/tmp/up/sub/payload.bin")
        r1.download("/tmp/up/sub/payload.bin", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == payload
        (tmp_path / "tree" / "a").mkdir(parents=True)
        (tmp_path / "tree" / "a" / "f.txt").write_text("deep")
        r1.upload(tmp_path / "tree", "/tmp/tree_copy")
        assert r1.run(["cat", "/tmp/tree_copy/a/f.txt"]).stdout == "deep"

        ip2 = p.ips["n2"]
        pidfile = "/tmp/run/listener.pid"
        pid = r2.start_daemon(["python3", "-c", LISTENER, "7001"], pidfile=pidfile, logfile="/tmp/run/listener.log")
        assert pid > 0 and r2.is_running(pidfile)
        with pytest.raises(RemoteError, match="already running"):
            r2.start_daemon(["python3", "-c", LISTENER, "7001"], pidfile=pidfile, logfile="/tmp/run/l2.log")

        def dial(r: Any) -> str:
            return str(r.run(["python3", "-c", DIAL, ip2, "7001"]).stdout.strip())

        eventually("listener up", lambda: dial(r1) == "hi", 5)
        p.partition({"n2": {"n1"}})
        assert "-A INPUT -s " + p.ips["n1"] in r2.run(["iptables", "-S", "INPUT"]).stdout
        assert dial(r1) == "error TimeoutError" and dial(remotes["n3"]) == "hi"
        p.heal()
        assert dial(r1) == "hi"
        assert r2.signal(pidfile, signal.SIGKILL)
        eventually("listener gone", lambda: not r2.is_running(pidfile), 5)
        r2.start_daemon(["python3", "-c", LISTENER, "7001"], pidfile=pidfile, logfile="/tmp/run/listener.log")
        eventually("listener back", lambda: dial(r1) == "hi", 5)
        net_id = p.docker(["network", "inspect", "-f", "{{.Id}}", p.network]).stdout.decode().strip()
        bridge = f"br-{net_id[:12]}"
        assert bridge in host_links()
        # the run's own links: its bridge and the veths on it (other engines may add theirs)
        mine = {bridge} | links_on(bridge)
        assert len(mine) == 1 + len(NODES)
    finally:
        p.teardown()
    assert ours(engine) == []
    assert not mine & host_links(), "bridge or veth of the run left on the host"


@pytest.mark.root
@pytest.mark.slow
def test_raftkv_in_containers_partition_and_leader_kill(engine: Engine, tmp_path: Path) -> None:
    """Three containers: raftkv up, a minority cut away while writes go on, heal, the leader
    killed and restarted, then nothing of the run left."""
    from harness.db.raftkv import RaftkvDB
    from harness.providers.docker import DockerProvider

    provider = DockerProvider({"host": engine.host})
    test = {"nodes": NODES, "startup_timeout": 30.0, "raft": {}}
    db = RaftkvDB(test)
    try:
        db.setup(provider, provider.setup(NODES), test)
        lead = partition_heal_kill_restart(db, provider, NODES)
        db.collect(lead, tmp_path / "collected")
        assert (tmp_path / "collected" / "events.jsonl").stat().st_size > 0
        assert (tmp_path / "collected" / "node.log").exists()
    finally:
        db.teardown()
        provider.teardown()
    assert ours(engine) == []


@pytest.mark.root
@pytest.mark.slow
def test_whole_raftkv_run_in_containers(engine: Engine, tmp_path: Path) -> None:
    """`faultline run`'s engine on the docker provider: code uploaded, faults, logs collected."""
    import json

    from harness.run.config import validate
    from harness.run.runner import Run

    test = validate({
        "name": "raftkv-docker", "db": "raftkv", "provider": "docker", "nodes": 3, "seed": 23,
        "time_limit": 8, "warmup": 1, "rate": 30, "concurrency": 3,
        "nemesis": {"faults": ["partition", "kill"], "interval": 2.5, "duration": 1.5},
        "provider_opts": {"host": engine.host}, "store": str(tmp_path / "store"), "recovery_timeout": 20,
    })
    outcome = Run(test).execute()
    assert outcome.failure is None, outcome.failure
    assert outcome.results is not None and outcome.results.valid is True, outcome.results
    history = [json.loads(ln) for ln in (outcome.run_dir / "history.jsonl").read_text().splitlines()]
    assert sum(1 for op in history if op["type"] == "ok" and op["process"] != "nemesis") > 20
    done = {op["f"] for op in history if op["process"] == "nemesis" and "error" not in op}
    assert "start-partition" in done, done
    for n in NODES:
        assert (outcome.run_dir / "nodes" / n / "events.jsonl").stat().st_size > 0
    assert ours(engine) == []


@pytest.mark.root
@pytest.mark.slow
def test_a_later_run_removes_what_a_crashed_one_left(engine: Engine) -> None:
    from harness.providers.docker import DockerProvider

    crashed = DockerProvider({"host": engine.host})
    crashed.setup(["n1"])  # never torn down, as after a crash of the controller
    later = DockerProvider({"host": engine.host})
    try:
        later.setup(["n1"])
        left = ours(engine)
        assert not any(crashed.run_id in item for item in left), left
        assert any(later.run_id in item for item in left), left
    finally:
        later.teardown()
        crashed.teardown()
    assert ours(engine) == []


@pytest.mark.root
@pytest.mark.slow
def test_clock_control_in_containers(engine: Engine, tmp_path: Path) -> None:
    """libfaketime from the host, built into the image, driven through a control file."""
    from harness.providers.docker import DockerProvider

    if find_libfaketime() is None:
        pytest.skip("needs libfaketime (Debian package faketime)")
    p = DockerProvider({"host": engine.host}, clock=True)
    try:
        r = p.setup(["n1", "n2"])
        assert p.supports_clock, p.clock_refusal
        now = ["python3", "-c", "import time; print(time.time())"]
        p.set_clock("n1", 3600.0)
        assert float(r["n1"].run(now, env=p.node_env("n1")).stdout) - time.time() > 3500
        assert abs(float(r["n2"].run(now, env=p.node_env("n2")).stdout) - time.time()) < 60
        p.set_clock("n1", 0.0)
        assert abs(float(r["n1"].run(now, env=p.node_env("n1")).stdout) - time.time()) < 60
        p.collect_clock("n1", tmp_path / "n1")  # the run folder's copy, out of the container
        assert (tmp_path / "n1" / "clock.log").read_text().splitlines()[1:] == [
            "offset 3600.0", "rate 1.0", "offset 0.0", "rate 1.0"]
        assert (tmp_path / "n1" / "clock.applied").read_text().splitlines()[-1].split()[1] == "4"
        with pytest.raises(HarnessError, match="rate must be within"):
            p.set_clock("n1", 0.0, 0.0)
    finally:
        p.teardown()
    assert ours(engine) == []


def test_unreachable_engine_is_one_clear_line() -> None:
    from harness.providers.docker import DockerProvider

    p = DockerProvider({"host": "unix:///nonexistent/fl-docker.sock"})
    with pytest.raises(HarnessError) as err:
        p.setup(["n1"])
    msg = str(err.value)
    assert "Docker engine is not reachable" in msg and "fl-docker.sock" in msg and "\n" not in msg


def test_missing_client_binary_is_named() -> None:
    from harness.providers.docker import DockerProvider

    with pytest.raises(HarnessError, match="not-a-docker-binary"):
        DockerProvider({"docker": "not-a-docker-binary"}).setup(["n1"])


def test_unknown_option_names_the_field() -> None:
    from harness.providers.docker import DockerProvider

    with pytest.raises(HarnessError, match=r"provider_opts.imgae: unknown docker option"):
        DockerProvider({"imgae": "x"})


def test_registry_creates_it() -> None:
    from harness import providers

    p = providers.get("docker")({"provider_opts": {"image": "x"}}, Path("."))
    assert p.name == "docker" and not p.supports_clock
    with pytest.raises(HarnessError, match="clock faults"):
        p.set_clock("n1", 1.0)


def test_image_rootfs_has_python_and_tools() -> None:
    """The image is the host's own Python 3.11 and tools, under their host paths."""
    from harness.providers.docker_image import TOOLS, collect_rootfs

    require_binary("ldd", *TOOLS)
    fs = collect_rootfs(sys.executable)
    exe = fs.links["/usr/bin/python3"]
    assert exe in fs.files and Path(exe).name.startswith("python3")
    assert all(f"/usr/bin/{t}" in fs.files for t in TOOLS)
    assert any(f.endswith("/json/__init__.py") for f in fs.files)
    assert not any("/test/" in f or "_tkinter" in f for f in fs.files)
    # Every library the interpreter links is there (libc at least).
    assert any(Path(f).name.startswith("libc.so") for f in fs.files)
    # and the unwinder glibc dlopens for pthread_exit (a daemon thread at interpreter exit)
    assert any(Path(f).name == "libgcc_s.so.1" for f in fs.files)


#: A docker client standing in for Docker CE 28's against a 20.10 engine: `version` reports
#: API 1.50 / 1.41, every call is logged with its DOCKER_API_VERSION, and `docker run` fails
#: the first FAILS times the way the CE 28 client prints a daemon error: the cause first,
#: its advice last.
FAKE_DOCKER = """#!{python}
import json, os, sys
state = {state!r}
args = sys.argv[1:]
if args[:1] == ["-H"]:
    args = args[2:]
with open(state + "/calls", "a") as f:
    f.write(json.dumps([os.environ.get("DOCKER_API_VERSION"), args]) + "\\n")
cmd = args[0]
if cmd == "version":
    print("1.50 1.41")
elif cmd == "run":
    runs = state + "/runs"
    n = int(open(runs).read()) if os.path.exists(runs) else 0
    open(runs, "w").write(str(n + 1))
    if n < {fails}:
        sys.stderr.write("WARNING: IPv4 forwarding is disabled. Networking will not work.\\n"
                         "docker: Error response from daemon: the cause, on an earlier line.\\n\\n"
                         "Run 'docker run --help' for more information\\n")
        sys.exit(125)
    print("0123456789ab")
elif cmd == "inspect":
    print("10.78.0.2")
"""


def fake_docker(tmp_path: Path, fails: int) -> Path:
    path = tmp_path / "docker"
    path.write_text(FAKE_DOCKER.format(python=sys.executable, state=str(tmp_path), fails=fails))
    path.chmod(0o755)
    return path


def calls(tmp_path: Path) -> list[tuple[str | None, list[str]]]:
    import json

    return [(api, args) for api, args in map(json.loads, (tmp_path / "calls").read_text().splitlines())]


def test_a_failed_docker_run_is_retried_and_the_client_pinned_to_the_engine_api(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from harness.providers.docker import DockerProvider

    p = DockerProvider({"docker": str(fake_docker(tmp_path, fails=1)), "image": "prebuilt:1",
                        "host": f"unix://{tmp_path / 'calls'}"})  # a socket path that exists
    with caplog.at_level(logging.WARNING, logger="harness.providers.docker"):
        p.setup(["n1", "n2"])
    made = calls(tmp_path)
    assert made[0] == (None, ["version", "--format", "{{.Client.DefaultAPIVersion}} {{.Server.APIVersion}}"])
    assert all(api == "1.41" for api, _ in made[1:]), made  # pinned once the engine answered
    runs = [args for _, args in made if args[0] in ("run", "rm")]
    name = f"fl-{p.run_id}-n1"
    assert [a[0] for a in runs] == ["run", "rm", "run", "run"] and runs[1] == ["rm", "-f", name]
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "Error response from daemon: the cause, on an earlier line." in warning and "--help" not in warning


def test_a_docker_run_that_keeps_failing_shows_the_whole_error(tmp_path: Path) -> None:
    from harness.providers.docker import DockerProvider

    p = DockerProvider({"docker": str(fake_docker(tmp_path, fails=99)), "image": "prebuilt:1",
                        "host": f"unix://{tmp_path / 'calls'}"})
    with pytest.raises(HarnessError) as err:
        p.setup(["n1"])
    msg = str(err.value)
    assert "\n" not in msg and "failed 3 times" in msg, msg
    assert "IPv4 forwarding is disabled" in msg and "Error response from daemon: the cause" in msg, msg
    assert [args for _, args in calls(tmp_path) if args[0] == "rm"] == [["rm", "-f", f"fl-{p.run_id}-n1"]] * 3
