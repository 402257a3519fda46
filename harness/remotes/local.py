"""LocalRemote: a `Remote` for processes on the controller's own machine.

Commands are argv lists run without a shell. Daemons get their own session (so a Ctrl-C of the
controller does not reach them), a pid file, and are signalled by pid. The Popen objects are
kept so that killed daemons are reaped instead of lingering as zombies.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.protocols import CommandResult, RemoteError

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class LocalRemote:
    """Runs commands and daemons on this machine for host `host`."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._daemons: dict[str, subprocess.Popen[bytes]] = {}

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        """The argv actually executed (a subclass may run it elsewhere, e.g. in a namespace)."""
        return list(argv)

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
        # sudo is meaningless locally: the controller's own user runs everything.
        full_env = {**os.environ, **env} if env else None
        try:
            p = subprocess.run(
                self._wrap(argv), input=stdin, capture_output=True, timeout=timeout, env=full_env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RemoteError(f"{self.host}: {argv[0]}: {e}") from None
        res = CommandResult(
            self.host, tuple(argv), p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        )
        return res.checked() if check else res

    def upload(self, local: Path, remote_path: str) -> None:
        dest = Path(remote_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if local.is_dir():
                shutil.copytree(local, dest, dirs_exist_ok=True)
            else:
                shutil.copy2(local, dest)
        except OSError as e:
            raise RemoteError(f"{self.host}: upload {local} -> {remote_path}: {e}") from None

    def download(self, remote_path: str, local: Path) -> None:
        src = Path(remote_path)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            if src.is_dir():
                shutil.copytree(src, local, dirs_exist_ok=True)
            else:
                shutil.copy2(src, local)
        except OSError as e:
            raise RemoteError(f"{self.host}: download {remote_path}: {e}") from None

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
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        Path(pidfile).parent.mkdir(parents=True, exist_ok=True)
        full_env = {**os.environ, **(env or {})}
        with open(logfile, "ab") as out:
            try:
                p = subprocess.Popen(
                    self._wrap(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as e:
                raise RemoteError(f"{self.host}: cannot start {argv[0]}: {e}") from None
        self._daemons[pidfile] = p
        Path(pidfile).write_text(f"{p.pid}\n")
        log.debug("%s: started pid %d: %s", self.host, p.pid, " ".join(argv))
        return p.pid

    def _pid(self, pidfile: str) -> int | None:
        try:
            return int(Path(pidfile).read_text().strip())
        except (OSError, ValueError):
            return None

    def signal(self, pidfile: str, signum: int) -> bool:
        if not self.is_running(pidfile):
            return False
        pid = self._pid(pidfile)
        if pid is None:
            return False
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True

    def is_running(self, pidfile: str) -> bool:
        p = self._daemons.get(pidfile)
        if p is not None:
            return p.poll() is None
        pid = self._pid(pidfile)
        return pid is not None and pid_alive(pid)

    def wait(self, pidfile: str, timeout: float) -> bool:
        """Wait for the daemon to exit (reaping it); True if it did within `timeout`."""
        p = self._daemons.get(pidfile)
        if p is None:
            return not self.is_running(pidfile)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        for p in self._daemons.values():
            p.poll()
        self._daemons.clear()
