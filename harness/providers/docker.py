"""The `docker` provider: one container per node through the Docker engine, where one runs.

Nothing can be pulled, so by default the provider builds the node image itself from the host
(`harness.providers.docker_image`: the controller's Python 3.11 and a few tools), tags it
`fl-node:<run id>` and removes it at teardown; `provider_opts.image` names a prebuilt image
instead (kept). Containers run with `--init` (so killed daemons are reaped), NET_ADMIN
(iptables partitions inside the container) and the label `faultline.run=<id>`, on a network
`fl-<id>` of their own. Partitions are iptables rules inside the containers. Clock faults,
when a test asks for them, use the host's libfaketime built into the image, with a clock log
per node under /opt/faultline (as on ssh). If the engine is not reachable, setup says so
in one line and creates nothing; a later run removes what a crashed one left.

A docker client newer than the engine (Docker CE's 28 client before Debian's 20.10 engine on
the PATH) is pinned to the engine's API version (DOCKER_API_VERSION) instead of relying on
its per-command version negotiation. A failed docker command is reported with all of its
stderr (docker prints the cause on an earlier line than its last). A container that fails to
be created or started is removed and tried again, twice at most: a fresh engine under load has
been seen to fail a first `docker run` that succeeds when repeated.

Config:
```yaml
provider_opts:
  image: my-node:1          # optional: a local image with Python 3.11, sh, coreutils, tar, iptables
  docker: docker            # the client binary
  host: unix:///run/docker.sock   # optional: the engine's endpoint (docker -H)
  subnet: 10.78.0.0/24      # optional: the test network's subnet
  python: /usr/bin/python3.11     # optional: the host Python copied into a built image
```
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.protocols import CommandResult, HarnessError, NodeAddresses, Remote, RemoteError
from harness.providers.clock import ClockOp, ClockState, find_libfaketime, set_ops
from harness.providers.clock import asked_for as clock_asked_for
from harness.providers.docker_image import collect_rootfs, default_python, write_rootfs_tar
from harness.providers.remote_clock import LIBFAKETIME_GLOB, RemoteClocks

log = logging.getLogger(__name__)

LABEL = "faultline.run"
PEER_PORT, CLIENT_PORT, ADMIN_PORT = 7000, 7001, 7002
#: Repository of the images the provider builds (tag: the run id).
BUILT_IMAGE_REPO = "fl-node"
#: The provider's own directory in each container (clock logs, clock agent).
NODE_DIR = "/opt/faultline"
OPTS = ("image", "docker", "host", "subnet", "python")
#: Attempts at creating and starting one container.
RUN_ATTEMPTS = 3
#: Seconds an engine may take to answer: one that is starting makes its socket at once, and
#: answers once it has initialised.
ENGINE_WAIT, SOCKET_WAIT = 15.0, 3.0


def stderr_line(stderr: bytes, limit: int = 1200) -> str:
    """All of a docker command's stderr on one line (its cause is often not the last line),
    without docker's "Run 'docker run --help'" advice."""
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines()]
    useful = [ln for ln in lines if ln and not re.match(r"(Run|See) 'docker .*--help'", ln)]
    text = " | ".join(useful) or "(no error output)"
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _api(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:2])


@dataclass(frozen=True)
class DockerCLI:
    """The docker client, pointed at one engine."""

    binary: str = "docker"
    host: str | None = None
    #: The engine's API version when the client is newer (DOCKER_API_VERSION); None: negotiate.
    api_version: str | None = None

    def __call__(self, args: Sequence[str], *, check: bool = True, timeout: float = 60.0,
                 stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        argv = [self.binary, *(["-H", self.host] if self.host else []), *args]
        env = None if self.api_version is None else {**os.environ, "DOCKER_API_VERSION": self.api_version}
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False, env=env)
        except FileNotFoundError:
            raise HarnessError(f"docker provider: the docker client {self.binary!r} is not installed") from None
        except OSError as e:  # e.g. EACCES from a PATH entry this user may not search
            raise HarnessError(f"docker provider: cannot run the docker client {self.binary!r}: {e.strerror}") from None
        except subprocess.TimeoutExpired:
            raise HarnessError(f"docker provider: docker {args[0]} timed out after {timeout}s") from None
        if check and proc.returncode != 0:
            raise HarnessError(f"docker provider: docker {' '.join(args[:2])} failed: {stderr_line(proc.stderr)}")
        return proc


def engine_versions(docker: DockerCLI) -> tuple[str, str] | str:
    """(client API version, engine API version), or why the engine does not answer (one line).
    `docker version` answers with a server part only once the engine serves its API."""
    try:
        proc = docker(["version", "--format", "{{.Client.DefaultAPIVersion}} {{.Server.APIVersion}}"], check=False,
                      timeout=20)
    except HarnessError as e:
        return str(e)
    words = proc.stdout.decode(errors="replace").split()
    if proc.returncode == 0 and len(words) == 2 and all(_api(w) for w in words):
        return words[0], words[1]
    return stderr_line(proc.stderr) if proc.stderr.strip() else f"docker version exited {proc.returncode}"


def _socket_missing(host: str | None) -> bool:
    """True if the engine's unix socket does not exist (nothing is starting there)."""
    host = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return host.startswith("unix://") and not os.path.exists(host[len("unix://"):])


def connect_engine(docker: DockerCLI, wait: float = ENGINE_WAIT, socket_wait: float = SOCKET_WAIT) -> DockerCLI:
    """The client pinned to the engine's API version if the client is newer; waits up to `wait`
    seconds for the engine to answer (`socket_wait` while its unix socket does not exist).
    HarnessError (one line) otherwise."""
    started = time.monotonic()
    while True:
        got = engine_versions(docker)
        if not isinstance(got, str):
            break
        waited = time.monotonic() - started
        if waited >= wait or (_socket_missing(docker.host) and waited >= socket_wait):
            raise HarnessError(
                f"docker provider: the Docker engine is not reachable ({got}); "
                "start it (Debian package docker.io) or use provider local or netns"
            )
        time.sleep(0.5)
    client, server = got
    if _api(client) > _api(server):
        log.info("docker: client API %s is newer than the engine's %s: pinned to %s", client, server, server)
        return DockerCLI(docker.binary, docker.host, server)
    return docker


def engine_problem(docker: DockerCLI | None = None) -> str | None:
    """None if the Docker engine answers, else a one-line reason."""
    got = engine_versions(docker or DockerCLI())
    return got if isinstance(got, str) else None


class DockerRemote:
    """Runs commands in one container with `docker exec`; files move with `docker cp`."""

    def __init__(self, host: str, container: str, docker: DockerCLI) -> None:
        self.host = host
        self.container = container
        self.docker = docker

    def run(
        self,
        argv: Sequence[str],
        *,
        sudo: bool = False,
        check: bool = True,
        timeout: float | None = 60.0,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        args = ["exec", "-i"] if stdin is not None else ["exec"]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        try:
            proc = self.docker([*args, self.container, *argv], check=False,
                               timeout=timeout or 3600.0, stdin=stdin)
        except HarnessError as e:
            raise RemoteError(f"{self.host}: {e}") from None
        res = CommandResult(self.host, tuple(argv), proc.returncode,
                            proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
        return res.checked() if check else res

    def upload(self, local: Path, remote_path: str) -> None:
        local = Path(local)
        self.run(["mkdir", "-p", remote_path if local.is_dir() else str(Path(remote_path).parent)])
        # `dir/.` copies a tree's contents into remote_path, as the SSH remote merges them.
        source = f"{local}/." if local.is_dir() else str(local)
        try:
            proc = self.docker(["cp", source, f"{self.container}:{remote_path}"], check=False, timeout=600)
        except HarnessError as e:
            raise RemoteError(f"{self.host}: upload {local}: {e}") from None
        if proc.returncode != 0:
            raise RemoteError(f"{self.host}: upload {local}: {proc.stderr.decode(errors='replace').strip()}")

    def download(self, remote_path: str, local: Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        try:
            proc = self.docker(["cp", f"{self.container}:{remote_path}", str(local)], check=False, timeout=600)
        except HarnessError as e:
            raise RemoteError(f"{self.host}: download {remote_path}: {e}") from None
        if proc.returncode != 0:
            raise RemoteError(f"{self.host}: download {remote_path}: {proc.stderr.decode(errors='replace').strip()}")

    def start_daemon(
        self,
        argv: Sequence[str],
        *,
        pidfile: str,
        logfile: str,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> int:
        if self.is_running(pidfile):
            raise RemoteError(f"{self.host}: daemon of {pidfile} is already running")
        args = ["exec", "-d"]
        if cwd:
            args += ["-w", cwd]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        # The shell records its own pid, then execs the daemon under that same pid.
        script = 'p="$1"; l="$2"; shift 2; mkdir -p "$(dirname "$p")" "$(dirname "$l")" && echo $$ > "$p" && exec "$@" >> "$l" 2>&1 < /dev/null'
        try:
            self.docker([*args, self.container, "sh", "-c", script, "sh", pidfile, logfile, *argv])
        except HarnessError as e:
            raise RemoteError(f"{self.host}: cannot start {argv[0]}: {e}") from None
        for _ in range(100):
            pid = self._pid(pidfile)
            if pid is not None:
                return pid
            time.sleep(0.05)
        raise RemoteError(f"{self.host}: {argv[0]} wrote no pid to {pidfile}")

    def _pid(self, pidfile: str) -> int | None:
        res = self.run(["cat", pidfile], check=False)
        try:
            return int(res.stdout.strip()) if res.exit_code == 0 else None
        except ValueError:
            return None

    def is_running(self, pidfile: str) -> bool:
        script = 'p=$(cat "$1") && s=$(cat "/proc/$p/stat") && printf %s "${s##*) }"'
        res = self.run(["sh", "-c", script, "sh", pidfile], check=False)
        return res.exit_code == 0 and res.stdout[:1] not in ("", "Z")

    def signal(self, pidfile: str, signum: int) -> bool:
        res = self.run(["sh", "-c", 'kill -"$2" "$(cat "$1")"', "sh", pidfile, str(int(signum))], check=False)
        return res.exit_code == 0

    def close(self) -> None:
        """Nothing held open: every call is its own docker command."""


class DockerProvider:
    name = "docker"

    def __init__(self, opts: Mapping[str, Any], clock: bool = False) -> None:
        unknown = sorted(map(str, set(opts) - set(OPTS)))
        if unknown:
            raise HarnessError(f"provider_opts.{unknown[0]}: unknown docker option (known: {', '.join(OPTS)})")
        for key, value in opts.items():
            if value is not None and not (isinstance(value, str) and value and value.isprintable()):
                raise HarnessError(f"provider_opts.{key}: expected a string, got {value!r}"[:300])
        self.docker = DockerCLI(str(opts.get("docker", "docker")), opts.get("host"))
        self.run_id = secrets.token_hex(3)
        self.network = f"fl-{self.run_id}"
        self.subnet: str | None = opts.get("subnet")
        self.python = str(opts.get("python") or default_python())
        #: An image named in the config is the user's; one built here is removed at teardown.
        self.image: str = str(opts.get("image") or f"{BUILT_IMAGE_REPO}:{self.run_id}")
        self.built = not opts.get("image")
        self.remotes: dict[str, DockerRemote] = {}
        self.ips: dict[str, str] = {}
        self._grudged: set[str] = set()
        #: Clock control is set up only when the test asks for clock faults (as on ssh).
        self.want_clock = clock
        self.supports_clock = False
        self.clock_refusal = "clock faults were not asked for when the containers were made"
        self.clocks: dict[str, RemoteClocks] = {}

    def setup(self, nodes: Sequence[str]) -> dict[str, Remote]:
        self.docker = connect_engine(self.docker)
        self.cleanup_leftovers()
        try:
            if self.built:
                self.build_image()
            subnet = ["--subnet", self.subnet] if self.subnet else []
            self.docker(["network", "create", "--label", f"{LABEL}={self.run_id}", *subnet, self.network])
            for node in nodes:
                name = f"fl-{self.run_id}-{node}"
                self.run_container(node, name)
                self.remotes[node] = DockerRemote(node, name, self.docker)
                fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
                self.ips[node] = self.docker(["inspect", "-f", fmt, name]).stdout.decode().strip()
            if self.want_clock:
                for node in nodes:
                    self._prepare_clock(node)
                self.supports_clock = len(self.clocks) == len(nodes)
        except BaseException:
            self.teardown()
            raise
        log.info("docker: %d containers on network %s (image %s)", len(nodes), self.network, self.image)
        return dict(self.remotes)

    def run_container(self, node: str, name: str) -> None:
        """Create and start the node's container; a failed attempt is logged with docker's
        whole error, its container removed, and tried again (RUN_ATTEMPTS in all)."""
        argv = ["run", "-d", "--init", "--name", name, "--hostname", node, "--network", self.network,
                "--cap-add", "NET_ADMIN", "--label", f"{LABEL}={self.run_id}", self.image, "sleep", "infinity"]
        for attempt in range(1, RUN_ATTEMPTS + 1):
            proc = self.docker(argv, check=False, timeout=120)
            if proc.returncode == 0:
                return
            error = stderr_line(proc.stderr)
            # a container may have been created before the failure: its name would be taken
            self.docker(["rm", "-f", name], check=False)
            if attempt == RUN_ATTEMPTS:
                raise HarnessError(f"docker provider: docker run of {node} failed {RUN_ATTEMPTS} times: {error}")
            log.warning("docker: docker run of %s failed (attempt %d of %d), retrying: %s",
                        node, attempt, RUN_ATTEMPTS, error)
            time.sleep(attempt)

    def _prepare_clock(self, node: str) -> None:
        remote = self.remotes[node]
        find = f'for f in {LIBFAKETIME_GLOB}; do [ -e "$f" ] && echo "$f" && break; done; true'
        lib = remote.run(["sh", "-c", find]).stdout.strip()
        if not lib:
            self.clock_refusal = f"{node}: libfaketime is not in the image (Debian package libfaketime on the host)"
            return
        clocks = RemoteClocks(remote, NODE_DIR, lib, sudo=False)
        clocks.install_shims()
        problem = clocks.probe("python3")
        if problem is None:
            clocks.init(node)
            self.clocks[node] = clocks
        else:
            self.clock_refusal = f"{node}: {problem}"
            log.warning("docker: clock faults unavailable: %s", self.clock_refusal)

    def build_image(self) -> None:
        """Import the host-made root file system as this run's node image."""
        started = time.monotonic()
        lib = find_libfaketime() if self.want_clock else None
        with tempfile.TemporaryDirectory(prefix="fl-node-image-") as tmp:
            fs = collect_rootfs(self.python, [lib] if lib else [])
            tar = write_rootfs_tar(fs, Path(tmp) / "rootfs.tar")
            self.docker(["import", "--change", "ENV PATH=/usr/bin", "--message", f"{LABEL}={self.run_id}",
                         str(tar), self.image], timeout=300)
        log.info("docker: built %s from the host's Python in %.1fs", self.image, time.monotonic() - started)

    def cleanup_leftovers(self) -> None:
        """Remove containers, networks and built images of earlier runs (all carry our names)."""
        ids = self.docker(["ps", "-aq", "--filter", f"label={LABEL}"], check=False).stdout.split()
        if ids:
            self.docker(["rm", "-f", *[i.decode() for i in ids]], check=False)
        nets = self.docker(["network", "ls", "-q", "--filter", f"label={LABEL}"], check=False).stdout.split()
        for net in nets:
            self.docker(["network", "rm", net.decode()], check=False)
        for tag in self.our_images():
            self.docker(["rmi", tag], check=False)

    def our_images(self) -> list[str]:
        """Tags of the images this provider built (in any run) still known to the engine."""
        out = self.docker(["images", "--format", "{{.Repository}}:{{.Tag}}", BUILT_IMAGE_REPO], check=False)
        return [t for t in out.stdout.decode().split() if t.startswith(f"{BUILT_IMAGE_REPO}:")]

    def teardown(self) -> None:
        """Remove our containers, network and built image. Never raises."""
        try:
            for remote in self.remotes.values():
                self.docker(["rm", "-f", remote.container], check=False)
            self.remotes.clear()
            self.docker(["network", "rm", self.network], check=False)
            if self.built:
                self.docker(["rmi", self.image], check=False)
        except HarnessError as e:
            log.warning("docker: teardown: %s", e)

    def addresses(self, node: str) -> NodeAddresses:
        ip = self.ips.get(node)
        if ip is None:
            raise HarnessError(f"docker: unknown node {node!r}")
        return NodeAddresses((ip, PEER_PORT), (ip, CLIENT_PORT), (ip, ADMIN_PORT))

    def peer_address(self, src: str, dst: str) -> tuple[str, int]:
        return self.addresses(dst).peer_listen

    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        for dst, sources in grudge.items():
            if dst not in self.remotes:
                raise HarnessError(f"docker: partition names unknown node {dst!r}")
            for src in sorted(set(sources) - {dst}):
                self.remotes[dst].run(["iptables", "-w", "-A", "INPUT", "-s", self.ips[src], "-j", "DROP"])
            self._grudged.add(dst)

    def heal(self) -> None:
        for node in sorted(self._grudged):
            self.remotes[node].run(["iptables", "-w", "-F", "INPUT"])
        self._grudged.clear()

    def node_env(self, node: str) -> dict[str, str]:
        clocks = self.clocks.get(node)
        return {} if clocks is None else clocks.env(node)

    def _clocks(self, node: str) -> RemoteClocks:
        clocks = self.clocks.get(node)
        if clocks is None:
            raise HarnessError(f"docker: clock faults unavailable on {node}: {self.clock_refusal}")
        return clocks

    def change_clock(self, node: str, ops: Sequence[ClockOp]) -> None:
        self._clocks(node).append(node, ops)

    def set_clock(self, node: str, offset_s: float, rate: float = 1.0) -> None:
        self.change_clock(node, set_ops(offset_s, rate))

    def clock_state(self, node: str) -> ClockState | None:
        return self._clocks(node).state(node)

    def collect_clock(self, node: str, dest: Path) -> None:
        clocks = self.clocks.get(node)
        if clocks is not None:
            clocks.collect(node, dest)


def create(test: Mapping[str, Any], work_dir: Path) -> DockerProvider:
    return DockerProvider(test.get("provider_opts") or {}, clock=clock_asked_for(test))
