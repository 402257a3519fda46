"""The `docker` provider: one container per node through the Docker engine, where one runs.

No image can be pulled here, so `provider_opts.image` must name an image built locally that has
Python 3.11, iptables and the system under test (for raftkv, the project itself). Containers
run with `--init` (so killed daemons are reaped), NET_ADMIN (iptables partitions inside the
container) and the label `faultline.run=<id>`, on a network `fl-<id>` of their own.
If the engine is not reachable, setup says so in one line and creates nothing.

Config:
```yaml
provider_opts:
  image: faultline-node:latest
  docker: docker            # the client binary
```
"""

from __future__ import annotations

import logging
import secrets
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.protocols import CommandResult, HarnessError, NodeAddresses, Remote, RemoteError

log = logging.getLogger(__name__)

LABEL = "faultline.run"
PEER_PORT, CLIENT_PORT, ADMIN_PORT = 7000, 7001, 7002


def _docker(docker: str, args: Sequence[str], *, check: bool = True, timeout: float = 60.0,
            stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run([docker, *args], input=stdin, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise HarnessError(f"docker provider: the docker client {docker!r} is not installed") from None
    except subprocess.TimeoutExpired:
        raise HarnessError(f"docker provider: docker {args[0]} timed out after {timeout}s") from None
    if check and proc.returncode != 0:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        raise HarnessError(f"docker provider: docker {' '.join(args[:2])} failed: {last}")
    return proc


def engine_problem(docker: str = "docker") -> str | None:
    """None if the Docker engine answers, else a one-line reason."""
    try:
        proc = _docker(docker, ["info", "--format", "{{.ServerVersion}}"], check=False, timeout=20)
    except HarnessError as e:
        return str(e)
    if proc.returncode == 0 and proc.stdout.strip():
        return None
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"docker info exited {proc.returncode}"


class DockerRemote:
    """Runs commands in one container with `docker exec`; files move with `docker cp`."""

    def __init__(self, host: str, container: str, docker: str) -> None:
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
            proc = _docker(self.docker, [*args, self.container, *argv], check=False,
                           timeout=timeout or 3600.0, stdin=stdin)
        except HarnessError as e:
            raise RemoteError(f"{self.host}: {e}") from None
        res = CommandResult(self.host, tuple(argv), proc.returncode,
                            proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            last = (res.stderr.strip().splitlines() or [""])[-1]
            raise RemoteError(f"{self.host}: {shlex.join(argv)} exited {proc.returncode}: {last}")
        return res

    def upload(self, local: Path, remote_path: str) -> None:
        self.run(["mkdir", "-p", str(Path(remote_path).parent)])
        proc = _docker(self.docker, ["cp", str(local), f"{self.container}:{remote_path}"], check=False)
        if proc.returncode != 0:
            raise RemoteError(f"{self.host}: upload {local}: {proc.stderr.decode(errors='replace').strip()}")

    def download(self, remote_path: str, local: Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        proc = _docker(self.docker, ["cp", f"{self.container}:{remote_path}", str(local)], check=False)
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
        _docker(self.docker, [*args, self.container, "sh", "-c", script, "sh", pidfile, logfile, *argv])
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
    #: Clock faults would need libfaketime inside the image; refused rather than half-made.
    supports_clock = False
    clock_refusal = "clock faults are not supported in containers yet"

    def __init__(self, opts: Mapping[str, Any]) -> None:
        self.image = opts.get("image")
        self.docker = str(opts.get("docker", "docker"))
        self.run_id = secrets.token_hex(3)
        self.network = f"fl-{self.run_id}"
        self.remotes: dict[str, DockerRemote] = {}
        self.ips: dict[str, str] = {}
        self._grudged: set[str] = set()

    def setup(self, nodes: Sequence[str]) -> dict[str, Remote]:
        problem = engine_problem(self.docker)
        if problem is not None:
            raise HarnessError(
                f"docker provider: the Docker engine is not reachable ({problem}); "
                "start it (Debian package docker.io) or use provider local or netns"
            )
        if not self.image:
            raise HarnessError("provider_opts.image: the docker provider needs a locally built image")
        self.cleanup_leftovers()
        try:
            _docker(self.docker, ["network", "create", "--label", f"{LABEL}={self.run_id}", self.network])
            for node in nodes:
                name = f"fl-{self.run_id}-{node}"
                _docker(self.docker, ["run", "-d", "--init", "--name", name, "--hostname", node,
                                      "--network", self.network, "--cap-add", "NET_ADMIN",
                                      "--label", f"{LABEL}={self.run_id}", str(self.image),
                                      "sleep", "infinity"])
                self.remotes[node] = DockerRemote(node, name, self.docker)
                fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
                self.ips[node] = _docker(self.docker, ["inspect", "-f", fmt, name]).stdout.decode().strip()
        except BaseException:
            self.teardown()
            raise
        return dict(self.remotes)

    def cleanup_leftovers(self) -> None:
        """Remove containers and networks of earlier runs (all carry the faultline label)."""
        ids = _docker(self.docker, ["ps", "-aq", "--filter", f"label={LABEL}"], check=False).stdout.split()
        if ids:
            _docker(self.docker, ["rm", "-f", *[i.decode() for i in ids]], check=False)
        nets = _docker(self.docker, ["network", "ls", "-q", "--filter", f"label={LABEL}"], check=False).stdout.split()
        for net in nets:
            _docker(self.docker, ["network", "rm", net.decode()], check=False)

    def teardown(self) -> None:
        for remote in self.remotes.values():
            _docker(self.docker, ["rm", "-f", remote.container], check=False)
        self.remotes.clear()
        _docker(self.docker, ["network", "rm", self.network], check=False)

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
        return {}

    def set_clock(self, node: str, offset_s: float, rate: float = 1.0) -> None:
        raise HarnessError("docker provider: clock faults are not supported (no libfaketime control in containers)")


def create(test: Mapping[str, Any], work_dir: Path) -> DockerProvider:
    return DockerProvider(test.get("provider_opts") or {})
