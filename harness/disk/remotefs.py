"""faultfs mounts on hosts reached through a `Remote` (the ssh provider).

Each host gets a private directory of root's for the run (`<base>/faultline-disk-<node>.XXXX`,
harness/remotes/private_dir.py: nobody else can plant code where a root daemon imports from),
holding the `faultfs` package and the one-file `mfusepy` binding unpacked under `code/`;
faultfs runs from there as root (sudo), started over SSH, so it lives in the SSH server's
mount namespace, which the node processes, started over SSH as well, share. The mount is
`disk/`, with its backing directory, control socket, log and pid file beside it; the
directory goes at teardown. Control commands, file listings and alterations run
`python -m faultfs ctl|alter` and `find` on the host. Before any mount a probe checks the
host for `/dev/fuse`, fusermount3 and libfuse 3; a host without them fails the setup in one
line naming it (the config cannot know before connecting).
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import signal
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.protocols import HarnessError, Remote, RemoteError
from harness.remotes.private_dir import make_private_dir

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: Exit codes of the probe, and what each means.
PROBE = (
    'test -c /dev/fuse || exit 3; command -v fusermount3 >/dev/null 2>&1 || exit 4; '
    '"$1" -c "import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library(\'fuse3\') else 5)" || exit 5'
)
PROBE_ERRORS = {
    3: "/dev/fuse is missing (no FUSE on this host)",
    4: "fusermount3 is missing (Debian package fuse3)",
    5: "libfuse 3 is missing (Debian package fuse3), or Python is not runnable",
}
MOUNT_TIMEOUT = 15.0


def code_archive() -> bytes:
    """faultfs and mfusepy as a tar.gz (what a host needs besides Python and libfuse 3)."""
    spec = importlib.util.find_spec("mfusepy")
    if spec is None or spec.origin is None:
        raise HarnessError("disk faults need the mfusepy package on the controller (scripts/setup.sh)")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(REPO / "faultfs", arcname="faultfs", filter=lambda ti: None if "__pycache__" in ti.name else ti)
        tar.add(spec.origin, arcname=Path(spec.origin).name)
    return buf.getvalue()


class RemoteFaultfs:
    """The faultfs mounts of one run, one per host."""

    def __init__(self, base: str, python: str, metadata: str = "posix") -> None:
        self.base = base.rstrip("/")
        self.metadata = metadata
        self.python = python
        self.remotes: dict[str, Remote] = {}
        self._dirs: dict[str, str] = {}  # each node's private directory for the run
        #: each node's short private directory for its control socket: beside the mount, under
        #: a deep `dir`, the path would pass unix sockets' 107 bytes (hostfs does the same)
        self._socket_dirs: dict[str, str] = {}
        self._archive: bytes | None = None

    def _paths(self, node: str) -> dict[str, str]:
        d = self._dirs.get(node) or f"{self.base}/faultline-disk-{node}"
        return {"dir": d, "code": f"{d}/code", "mnt": f"{d}/disk", "backing": f"{d}/disk.backing",
                "control": f"{self._socket_dirs.get(node, d)}/faultfs.sock", "log": f"{d}/faultfs.log",
                "pid": f"{d}/faultfs.pid"}

    def _env(self, node: str) -> dict[str, str]:
        return {"PYTHONPATH": self._paths(node)["code"], "FUSE_LIBRARY_NAME": "fuse3"}

    def mount(self, node: str, remote: Remote) -> str:
        res = remote.run(["sh", "-c", PROBE, "sh", self.python], sudo=True, check=False, timeout=30)
        if res.exit_code != 0:
            why = PROBE_ERRORS.get(res.exit_code, (res.stderr.strip().splitlines() or [f"exit {res.exit_code}"])[-1])
            raise HarnessError(f"ssh: {node}: disk faults cannot be made real there: {why}")
        self._dirs[node] = make_private_dir(remote, self.base, f"faultline-disk-{node}", sudo=True)
        self._socket_dirs[node] = make_private_dir(remote, "/tmp", "fl-disk", sudo=True)
        p = self._paths(node)
        if self._archive is None:
            self._archive = code_archive()
        remote.run(["mkdir", "-p", p["code"], p["mnt"], p["backing"]], sudo=True)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "faultfs.tar.gz"
            local.write_bytes(self._archive)
            remote.upload(local, f"{p['dir']}/faultfs.tar.gz")
        remote.run(["tar", "-xzf", f"{p['dir']}/faultfs.tar.gz", "-C", p["code"]], sudo=True)
        argv = [self.python, "-m", "faultfs", "mount", p["mnt"], "--backing", p["backing"], "--control", p["control"],
                "--metadata", self.metadata]
        remote.start_daemon(argv, pidfile=p["pid"], logfile=p["log"], env=self._env(node), cwd=p["code"])
        self.remotes[node] = remote
        self.control(node, "status", wait=MOUNT_TIMEOUT)
        log.info("ssh: %s: faultfs mounted at %s", node, p["mnt"])
        return p["mnt"]

    def root(self, node: str) -> str | None:
        return self._paths(node)["mnt"] if node in self.remotes else None

    def _remote(self, node: str) -> Remote:
        r = self.remotes.get(node)
        if r is None:
            raise HarnessError(f"{node}: no faultfs mounted for its data")
        return r

    def control(self, node: str, command: str, wait: float = 0.0) -> dict[str, Any]:
        argv = [self.python, "-m", "faultfs", "ctl", self._paths(node)["control"], *command.split()]
        if wait:
            argv += ["--wait", str(wait)]
        try:
            res = self._remote(node).run(argv, sudo=True, check=False, env=self._env(node), timeout=60 + wait)
        except RemoteError as e:
            raise HarnessError(f"{node}: faultfs {command}: {e}") from None
        try:
            reply: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            last = (res.stderr.strip().splitlines() or [f"exit {res.exit_code}"])[-1]
            raise HarnessError(f"{node}: faultfs {command}: {last}") from None
        if not reply.get("ok"):
            raise HarnessError(f"{node}: faultfs {command}: {reply.get('error')}")
        return reply

    def files(self, node: str, under: str) -> list[tuple[str, int]]:
        res = self._remote(node).run(["find", under, "-type", "f", "-printf", "%s %P\\n"], sudo=True, check=False)
        out = []
        for line in res.stdout.splitlines():
            size, _, rel = line.partition(" ")
            if size.isdigit() and rel:
                out.append((rel, int(size)))
        return sorted(out)

    def data_end(self, node: str, path: str) -> int:
        res = self._remote(node).run([self.python, "-m", "faultfs", "alter", path, "--data-end"], sudo=True,
                                     check=False, env=self._env(node))
        if res.exit_code != 0:
            raise HarnessError(f"{node}: {(res.stderr.strip().splitlines() or ['reading failed'])[-1]}")
        return int(json.loads(res.stdout)["data_end"])

    def alter(self, node: str, path: str, flips: Sequence[tuple[int, int]] = (),
              truncate: int | None = None) -> dict[str, Any]:
        if not path.startswith(self._paths(node)["mnt"] + "/"):
            raise HarnessError(f"{node}: {path} is not on its faultfs mount")
        argv = [self.python, "-m", "faultfs", "alter", path, *(f"--flip={o}:{m}" for o, m in flips)]
        if truncate is not None:
            argv.append(f"--truncate={truncate}")
        res = self._remote(node).run(argv, sudo=True, check=False, env=self._env(node))
        if res.exit_code != 0:
            raise HarnessError(f"{node}: {(res.stderr.strip().splitlines() or ['alter failed'])[-1]}")
        out: dict[str, Any] = json.loads(res.stdout)
        return out

    def teardown(self) -> None:
        """Stop every faultfs (SIGTERM: a clean unmount) and detach what stays mounted.
        Never raises."""
        for node, remote in list(self.remotes.items()):
            p = self._paths(node)
            try:
                if remote.signal(p["pid"], signal.SIGTERM):
                    deadline = time.monotonic() + 10
                    while remote.is_running(p["pid"]) and time.monotonic() < deadline:
                        time.sleep(0.1)
                remote.run([self.python, "-m", "faultfs", "umount", p["mnt"]], sudo=True, check=False,
                           env=self._env(node))
                # the data dir is scratch, as on the other providers; never through a live mount
                remote.run(["sh", "-c", 'grep -qs " $1 " /proc/self/mounts || rm -rf -- "$2"', "sh", p["mnt"],
                            p["dir"]], sudo=True, check=False)
                if node in self._socket_dirs:
                    remote.run(["rm", "-rf", "--", self._socket_dirs[node]], sudo=True, check=False)
            except (HarnessError, OSError) as e:
                log.warning("ssh: %s: unmounting faultfs: %s", node, e)
        self.remotes.clear()
        self._dirs.clear()
        self._socket_dirs.clear()
