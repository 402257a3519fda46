"""faultfs mounts on the controller's own host, for the providers whose nodes share its file
system (local: plain processes; netns: namespaces whose mounts come from the host's).

Each node's mount is `<node dir>/disk` over the backing directory `<node dir>/disk.backing`,
served by a `python -m faultfs mount` daemon started by the controller in the host's mount
namespace (never under `ip netns exec`: a mount made there is invisible to the next exec;
docs/faultfs.md), with its log and pid file beside them and its control socket in a private
temporary directory (unix socket paths are short). The pid file lets a
later run reap a dead controller's faultfs (harness.run.leftovers), which also detaches its
mounts: mounted by root, a faultfs killed by SIGKILL leaves a dead mount behind (no fusermount3
takes it down), and a `stat` of it fails or hangs.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faultfs.alter import AlterError, alter_file, data_end
from faultfs.control import ControlError, request
from harness.disk import MountedDataDirs
from harness.protocols import HarnessError
from harness.remotes.local import LocalRemote

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: Seconds a new mount has to answer on its control socket.
MOUNT_TIMEOUT = 15.0


def refusal() -> str | None:
    """Why faultfs cannot be mounted on this host (one line), or None."""
    if os.geteuid() != 0:
        return f"disk faults need root to mount faultfs (FUSE); running as uid {os.geteuid()}"
    if not Path("/dev/fuse").exists():
        return "disk faults need FUSE: /dev/fuse is missing on this host"
    if shutil.which("fusermount3") is None:
        return "disk faults need fusermount3 (Debian package fuse3)"
    if importlib.util.find_spec("mfusepy") is None:
        return "disk faults need the mfusepy package (scripts/setup.sh installs it)"
    if ctypes.util.find_library("fuse3") is None:
        return "disk faults need libfuse 3 (Debian package fuse3)"
    return None


class HostFaultfs:
    """The faultfs mounts of one run on this host."""

    def __init__(self, work_dir: Path, metadata: str = "posix") -> None:
        self.work_dir = Path(work_dir)
        self.metadata = metadata
        self.remote = LocalRemote("faultfs")  # the host's own mount namespace
        self.mounts: dict[str, Path] = {}
        # control sockets in a short private dir: a unix socket path has at most 107 bytes,
        # and run folders nest deep
        self._sockets: Path | None = None

    def _paths(self, node: str) -> dict[str, Path]:
        d = self.work_dir / node
        if self._sockets is None:
            self._sockets = Path(tempfile.mkdtemp(prefix="fl-faultfs-"))
        return {"mnt": d / "disk", "backing": d / "disk.backing", "control": self._sockets / f"{node}.sock",
                "log": d / "faultfs.log", "pid": d / "faultfs.pid"}

    def mount(self, node: str) -> Path:
        why = refusal()
        if why is not None:
            raise HarnessError(why)
        p = self._paths(node)
        p["mnt"].mkdir(parents=True, exist_ok=True)
        p["backing"].mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "faultfs", "mount", str(p["mnt"]), "--backing", str(p["backing"]),
                "--control", str(p["control"]), "--metadata", self.metadata]
        env = {"PYTHONPATH": ":".join(x for x in (str(REPO), os.environ.get("PYTHONPATH")) if x)}
        pid = self.remote.start_daemon(argv, pidfile=str(p["pid"]), logfile=str(p["log"]), env=env, cwd=str(REPO))
        self.mounts[node] = p["mnt"]
        try:
            request(p["control"], "status", wait=MOUNT_TIMEOUT)
        except ControlError as e:
            last = _last_line(p["log"])
            raise HarnessError(f"{node}: faultfs did not come up at {p['mnt']}: {e} ({last})") from None
        log.info("%s: faultfs pid %d mounted at %s", node, pid, p["mnt"])
        return p["mnt"]

    def root(self, node: str) -> str | None:
        m = self.mounts.get(node)
        return None if m is None else str(m)

    def control(self, node: str, command: str) -> dict[str, Any]:
        if node not in self.mounts:
            raise HarnessError(f"{node}: no faultfs mounted for its data")
        try:
            reply = request(self._paths(node)["control"], command)
        except ControlError as e:
            raise HarnessError(f"{node}: faultfs: {e}") from None
        if not reply.get("ok"):
            raise HarnessError(f"{node}: faultfs {command}: {reply.get('error')}")
        return reply

    def _on_mount(self, node: str, path: str) -> Path:
        mnt = self.mounts.get(node)
        if mnt is None:
            raise HarnessError(f"{node}: no faultfs mounted for its data")
        p = Path(os.path.normpath(path))
        if p != mnt and mnt not in p.parents:
            raise HarnessError(f"{node}: {path} is not on its faultfs mount {mnt}")
        return p

    def files(self, node: str, under: str) -> list[tuple[str, int]]:
        top = self._on_mount(node, under)
        out = []
        for dirpath, _dirs, names in os.walk(top):
            for name in names:
                full = Path(dirpath) / name
                try:
                    st = full.lstat()
                except FileNotFoundError:
                    continue
                if full.is_file() and not full.is_symlink():
                    out.append((str(full.relative_to(top)), st.st_size))
        return sorted(out)

    def data_end(self, node: str, path: str) -> int:
        try:
            return data_end(self._on_mount(node, path))
        except OSError as e:
            raise HarnessError(f"{node}: reading {path}: {e.strerror or e}") from None

    def alter(self, node: str, path: str, flips: Sequence[tuple[int, int]] = (),
              truncate: int | None = None) -> dict[str, Any]:
        try:
            return alter_file(self._on_mount(node, path), flips, truncate)
        except AlterError as e:
            raise HarnessError(f"{node}: {e}") from None
        except OSError as e:
            raise HarnessError(f"{node}: altering {path}: {e.strerror or e}") from None

    def teardown(self) -> None:
        """Unmount every mount (SIGTERM to its faultfs, a lazy unmount if that hangs).
        Never raises."""
        from faultfs.cli import UsageError, unmount

        for node, mnt in list(self.mounts.items()):
            pid = str(self._paths(node)["pid"])
            try:
                if self.remote.signal(pid, signal.SIGTERM) and not self.remote.wait(pid, 10.0):
                    log.warning("%s: faultfs did not exit 10 s after SIGTERM; SIGKILL", node)
                    self.remote.signal(pid, signal.SIGKILL)
                    self.remote.wait(pid, 5.0)
                unmount(mnt)
            except (HarnessError, OSError, UsageError) as e:
                log.warning("%s: unmounting faultfs at %s: %s", node, mnt, e)
        self.mounts.clear()
        self.remote.close()
        if self._sockets is not None:
            shutil.rmtree(self._sockets, ignore_errors=True)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"


class HostDisks(MountedDataDirs):
    """DataDirFaults for a provider whose hosts are this machine: mixed into the local and
    netns providers, which create `self.disks` (a HostFaultfs) in setup when
    `harness.disk.wanted(test)`."""

    def disk_refusal(self) -> str | None:
        return refusal()
