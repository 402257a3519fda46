"""Real faultfs mounts for tests and benchmarks: `python -m faultfs mount` processes that stop()
always unmounts, also when their faultfs hangs or died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from faultfs.cli import unmount
from faultfs.control import ControlError, request
from tests.support.env import REPO, require_binary


def require_fuse() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (FUSE mounts)")
    if not Path("/dev/fuse").exists():
        pytest.skip("needs /dev/fuse (FUSE)")
    require_binary("fusermount3")


@dataclass
class Mount:
    root: Path
    mnt: Path = field(init=False)
    backing: Path = field(init=False)
    control: Path = field(init=False)
    log: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.mnt, self.backing = self.root / "mnt", self.root / "backing"
        self.control, self.log = self.root / "ctl.sock", self.root / "faultfs.log"
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.backing.mkdir(parents=True, exist_ok=True)

    def start(self, *extra: str) -> Mount:
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faultfs", "mount", str(self.mnt), "--backing",
                 str(self.backing), "--control", str(self.control), "--log", str(self.log), *extra],
                cwd=REPO, stdout=logf, stderr=logf, start_new_session=True,
            )
        try:
            request(self.control, "status", wait=15)
        except ControlError as e:
            self.stop()
            raise AssertionError(f"faultfs did not come up: {e}\n{self.log.read_text()}") from None
        return self

    def ctl(self, command: str) -> dict[str, Any]:
        reply = request(self.control, command)
        assert reply["ok"], reply
        return reply

    def stop(self) -> None:
        """SIGTERM (a clean unmount), SIGKILL if that hangs, then make sure nothing stays
        mounted."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        unmount(self.mnt)

    def path(self, name: str) -> str:
        return str(self.mnt / name)


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str, data: bytes, sync: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
