"""A `Remote` for one Linux network namespace on this machine (`ip netns exec NS argv...`).

The namespace shares the controller's filesystem and process table, so uploads and downloads are
file copies and daemons are children of the controller that it reaps itself (a zombie would
otherwise look alive to `kill -0`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.protocols import CommandResult, RemoteError

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state field follows the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class NetnsRemote:
    """Runs commands and daemons inside the network namespace `namespace`; `host` is the node."""

    def __init__(self, host: str, namespace: str) -> None:
        self.host = host
        self.namespace = namespace
        self._daemons: dict[str, subprocess.Popen[bytes]] = {}

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

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
        # sudo is moot: the provider needs root to exist at all.
        full_env = {**os.environ, **(env or {})}
        try:
            proc = subprocess.run(
                self._wrap(argv),
                input=stdin,
                capture_output=True,
                timeout=timeout,
                env=full_env,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise RemoteError(f"{self.host}: {argv[0]} timed out after {timeout}s") from e
        except OSError as e:
            raise RemoteError(f"{self.host}: cannot run {argv[0]}: {e}") from e
        result = CommandResult(
            host=self.host,
            argv=tuple(argv),
            exit_code=proc.returncode,
            stdout=proc.stdout.decode(errors="replace"),
            stderr=proc.stderr.decode(errors="replace"),
        )
        if check and proc.returncode != 0:
            first = (result.stderr.strip().splitlines() or [""])[-1]
            raise RemoteError(
                f"{self.host}: {' '.join(argv)} exited {proc.returncode}: {first}"
            )
        return result

    def upload(self, local: Path, remote_path: str) -> None:
        try:
            Path(remote_path).parent.mkdir(parents=True, exist_ok=True)
            if Path(local).is_dir():
                shutil.copytree(local, remote_path, dirs_exist_ok=True)
            else:
                shutil.copyfile(local, remote_path)
        except OSError as e:
            raise RemoteError(f"{self.host}: upload {local} -> {remote_path}: {e}") from e

    def download(self, remote_path: str, local: Path) -> None:
        try:
            Path(local).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(remote_path, local)
        except OSError as e:
            raise RemoteError(f"{self.host}: download {remote_path}: {e}") from e

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
                # `ip netns exec` execs the program after setns, so the pid is the daemon's own.
                proc = subprocess.Popen(
                    self._wrap(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as e:
                raise RemoteError(f"{self.host}: cannot start {argv[0]}: {e}") from e
        Path(pidfile).write_text(f"{proc.pid}\n")
        self._daemons[pidfile] = proc
        log.debug("%s: started %s as pid %d", self.host, argv[0], proc.pid)
        return proc.pid

    def _pid(self, pidfile: str) -> int | None:
        try:
            return int(Path(pidfile).read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self, pidfile: str) -> bool:
        proc = self._daemons.get(pidfile)
        if proc is not None:
            return proc.poll() is None
        pid = self._pid(pidfile)
        return pid is not None and pid_alive(pid)

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

    def wait(self, pidfile: str, timeout: float) -> bool:
        """Wait until the daemon of `pidfile` has exited (and reap it); True if it has."""
        proc = self._daemons.get(pidfile)
        if proc is None:
            return not self.is_running(pidfile)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def reap(self, timeout: float) -> None:
        """Wait (bounded) for killed daemons to exit so that none is left a zombie."""
        deadline = time.monotonic() + timeout
        for proc in self._daemons.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s: pid %d did not exit", self.host, proc.pid)

    def close(self) -> None:
        # Reap what has exited; live daemons are the provider's to kill at teardown.
        for proc in self._daemons.values():
            proc.poll()
