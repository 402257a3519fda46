"""SSHRemote: a `Remote` on a real host reached with paramiko.

Every command is an argv list joined with `shlex.quote` per argument, so nothing a test passes
is ever interpreted by the remote shell. Host keys are checked against a known_hosts file
unless the config turns checking off (logged as a WARNING). Connecting is retried on flaky
networks; a command that was already sent is never retried (it may have run).

A user other than root gets root through `sudo -n` (never a password prompt): commands asked
with `sudo=True`, daemons, their signals, and file transfers that the user's own rights do not
allow (staged in a private temp dir, then copied into place as root). A sudo that refuses is
a one-line error naming the host and user, even for commands run with `check=False`.
"""

from __future__ import annotations

import logging
import shlex
import stat
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.protocols import CommandResult, RemoteError

log = logging.getLogger(__name__)

#: Upper bound of a command started with timeout=None, so that no wait is unbounded.
MAX_COMMAND_S = 3600.0
#: What sudo prints when it will not run a command for this user without a password.
SUDO_REFUSALS = ("sudo: a password is required", "is not allowed to execute", "sudo: not found",
                 "sudo: command not found", "must have a tty", "is not in the sudoers file")


class _NeedsRoot(Exception):
    """A transfer the login user's own rights do not allow (retried through sudo)."""


@dataclass(frozen=True)
class SSHHost:
    """How to reach one host. `address` is where the other nodes reach it (defaults to
    `hostname`)."""

    node: str
    hostname: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None  # None: use the SSH agent
    known_hosts: str | None = "~/.ssh/known_hosts"
    strict_host_key_checking: bool = True
    connect_timeout: float = 10.0
    retries: int = 3
    address: str | None = None

    @property
    def peer_ip(self) -> str:
        return self.address or self.hostname


class SSHRemote:
    """Runs commands, transfers files and daemons on one SSH host for node `host`."""

    def __init__(self, cfg: SSHHost) -> None:
        self.cfg = cfg
        self.host = cfg.node
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        # Channels may be opened from several threads; (re)connecting must happen once.
        self._lock = threading.RLock()

    # -- connection ---------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.host} ({self.cfg.user}@{self.cfg.hostname}:{self.cfg.port})"

    def connect(self) -> None:
        """Connect, retrying transient failures; host-key and auth failures are final."""
        cfg = self.cfg
        last: Exception | None = None
        for attempt in range(1, max(1, cfg.retries) + 1):
            client = paramiko.SSHClient()
            if cfg.known_hosts:
                path = Path(cfg.known_hosts).expanduser()
                if path.exists():
                    client.load_host_keys(str(path))
            if cfg.strict_host_key_checking:
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            else:
                log.warning("ssh: host key checking is OFF for %s (provider_opts)", self._where())
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            try:
                client.connect(
                    cfg.hostname, port=cfg.port, username=cfg.user,
                    key_filename=str(Path(cfg.key_file).expanduser()) if cfg.key_file else None,
                    allow_agent=cfg.key_file is None, look_for_keys=False,
                    timeout=cfg.connect_timeout, banner_timeout=cfg.connect_timeout,
                    auth_timeout=cfg.connect_timeout,
                )
            except paramiko.BadHostKeyException as e:
                client.close()
                raise RemoteError(
                    f"{self._where()}: host key does not match {cfg.known_hosts} (got {e.key.get_name()})"
                ) from None
            except paramiko.AuthenticationException as e:
                client.close()
                raise RemoteError(f"{self._where()}: authentication failed: {e}") from None
            except paramiko.SSHException as e:
                client.close()
                if "not found in known_hosts" in str(e):
                    raise RemoteError(f"{self._where()}: host key unknown to {cfg.known_hosts}") from None
                last = e
            except OSError as e:
                client.close()
                last = e
            else:
                self._client = client
                return
            log.info("ssh: connecting to %s failed (attempt %d): %s", self._where(), attempt, last)
            time.sleep(min(2.0, 0.25 * 2**attempt))
        reason = str(last) or type(last).__name__
        raise RemoteError(f"{self._where()}: unreachable after {cfg.retries} attempts: {reason}")

    def _transport(self) -> paramiko.Transport:
        with self._lock:
            return self._transport_locked()

    def _transport_locked(self) -> paramiko.Transport:
        if self._client is None or not (t := self._client.get_transport()) or not t.is_active():
            self.close()
            self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        if transport is None:
            raise RemoteError(f"{self._where()}: no SSH transport")
        return transport

    def _open_session(self) -> paramiko.Channel:
        """A session channel; reconnects once if the connection dropped (nothing sent yet)."""
        for attempt in (1, 2):
            try:
                return self._transport().open_session(timeout=self.cfg.connect_timeout)
            except (paramiko.SSHException, OSError, EOFError) as e:
                if attempt == 2:
                    raise RemoteError(f"{self._where()}: cannot open a session: {e}") from None
                self.close()
        raise AssertionError("unreachable")

    # -- commands -----------------------------------------------------------------------
    def command_line(
        self, argv: Sequence[str], *, sudo: bool = False, env: Mapping[str, str] | None = None
    ) -> str:
        """The shell command line for argv: every argument quoted on its own."""
        full: list[str] = []
        if sudo and self.cfg.user != "root":
            full += ["sudo", "-n", "--"]
        if env:
            full += ["env", *(f"{k}={v}" for k, v in env.items())]
        full += list(argv)
        return shlex.join(full)

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
        if not argv:
            raise RemoteError(f"{self.host}: empty command")
        code, out, err = self._exec(self.command_line(argv, sudo=sudo, env=env), tuple(argv),
                                    timeout=timeout, stdin=stdin, sudo=sudo)
        result = CommandResult(self.host, tuple(argv), code, out.decode(errors="replace"),
                               err.decode(errors="replace"))
        return result.checked() if check else result

    @property
    def uses_sudo(self) -> bool:
        return self.cfg.user != "root"

    def _exec(self, line: str, argv: tuple[str, ...], *, timeout: float | None,
              stdin: bytes | None, sudo: bool = False) -> tuple[int, bytes, bytes]:
        """Run one command line; (exit code, stdout, stderr) as bytes."""
        chan = self._open_session()
        out: list[bytes] = []
        err: list[bytes] = []
        deadline = time.monotonic() + (timeout if timeout is not None else MAX_COMMAND_S)
        try:
            chan.exec_command(line)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            # Drain both streams as they come: reading one to its end first could stall on a
            # full window of the other.
            while True:
                busy = False
                while chan.recv_ready():
                    out.append(chan.recv(65536))
                    busy = True
                while chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(65536))
                    busy = True
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if time.monotonic() > deadline:
                    raise RemoteError(f"{self.host}: {argv[0]} timed out after {timeout}s")
                if not busy:
                    time.sleep(0.005)
            code = chan.recv_exit_status()
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise RemoteError(f"{self._where()}: connection lost during {argv[0]}: {e}") from None
        finally:
            chan.close()
        stderr = b"".join(err)
        if sudo and self.uses_sudo and code != 0:
            # A refused sudo is a host set-up problem, never a result a caller may ignore.
            text = stderr.decode(errors="replace").strip()
            if any(marker in text for marker in SUDO_REFUSALS):
                last = text.splitlines()[-1]
                raise RemoteError(f"{self._where()}: sudo -n refused {argv[0]} (passwordless sudo needed): {last}")
        return code, b"".join(out), stderr

    # -- files --------------------------------------------------------------------------
    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None:
                try:
                    self._sftp = self._transport().open_sftp_client()
                except (paramiko.SSHException, OSError, EOFError) as e:
                    raise RemoteError(f"{self._where()}: cannot open SFTP: {e}") from None
            return self._sftp

    def upload(self, local: Path, remote_path: str) -> None:
        local = Path(local)
        try:
            self._put(local, remote_path)
        except _NeedsRoot as e:
            if not self.uses_sudo:
                raise RemoteError(f"{self.host}: upload {local} -> {remote_path}: {e}") from None
            self._put_as_root(local, remote_path)
        except OSError as e:
            raise RemoteError(f"{self.host}: upload {local} -> {remote_path}: {e}") from None

    def _put(self, local: Path, remote_path: str) -> None:
        """Upload with the login user's own rights; _NeedsRoot if they do not suffice."""
        target_dir = remote_path if local.is_dir() else str(Path(remote_path).parent)
        res = self.run(["mkdir", "-p", target_dir], check=False)
        if res.exit_code != 0:
            raise _NeedsRoot(res.stderr.strip() or f"mkdir -p {target_dir} failed")
        try:
            self._sftp_put(local, remote_path)
        except PermissionError as e:
            raise _NeedsRoot(str(e)) from None

    def _sftp_put(self, local: Path, remote_path: str) -> None:
        sftp = self._sftp_client()
        if local.is_dir():
            for item in sorted(local.rglob("*")):
                target = f"{remote_path}/{item.relative_to(local).as_posix()}"
                if item.is_dir():
                    try:
                        sftp.mkdir(target)
                    except OSError:
                        if not stat.S_ISDIR(sftp.stat(target).st_mode or 0):
                            raise
                else:
                    sftp.put(str(item), target)
                    sftp.chmod(target, stat.S_IMODE(item.stat().st_mode))
        else:
            sftp.put(str(local), remote_path)
            sftp.chmod(remote_path, stat.S_IMODE(local.stat().st_mode))

    def _put_as_root(self, local: Path, remote_path: str) -> None:
        """Stage in a temp dir of the login user, then copy into place with sudo."""
        staging = self.run(["mktemp", "-d", "/tmp/faultline-upload.XXXXXX"]).stdout.strip()
        try:
            staged = f"{staging}/{local.name}"
            if local.is_dir():
                self._sftp_client().mkdir(staged)
            self._sftp_put(local, staged)
            # A tree merges into an existing dir, as the direct path does; files are replaced,
            # never created exclusively, so hosts sharing one file system (namespaces on one
            # machine) can upload the same path at once.
            script = ('mkdir -p "$3" && tar -C "$1" -cf - . | tar -C "$2" --overwrite -xf -' if local.is_dir()
                      else 'mkdir -p "$3" && cp --preserve=mode "$1" "$2.fl-up.$$" && mv -f "$2.fl-up.$$" "$2"')
            parent = remote_path if local.is_dir() else str(Path(remote_path).parent)
            self.run(["sh", "-c", script, "sh", staged, remote_path, parent], sudo=True)
        except OSError as e:
            raise RemoteError(f"{self.host}: upload {local} -> {remote_path} via sudo: {e}") from None
        finally:
            self.run(["rm", "-rf", staging], check=False)

    def download(self, remote_path: str, local: Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._sftp_client().get(remote_path, str(local))
            return
        except PermissionError as e:
            if not self.uses_sudo:
                raise RemoteError(f"{self.host}: download {remote_path}: {e}") from None
        except OSError as e:
            raise RemoteError(f"{self.host}: download {remote_path}: {e}") from None
        # Files a root daemon wrote unreadable to the login user: read them through sudo.
        code, out, err = self._exec(self.command_line(["cat", "--", remote_path], sudo=True),
                                    ("cat", remote_path), timeout=MAX_COMMAND_S, stdin=None, sudo=True)
        if code != 0:
            raise RemoteError(f"{self.host}: download {remote_path} via sudo: {err.decode(errors='replace').strip()}")
        Path(local).write_bytes(out)

    # -- daemons ------------------------------------------------------------------------
    def start_daemon(
        self,
        argv: Sequence[str],
        *,
        pidfile: str,
        logfile: str,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> int:
        inner = self.command_line(argv, env=env)
        # setsid detaches from the SSH session, nohup ignores its hangup; the inner shell
        # writes its own pid, then execs the daemon under that same pid.
        script = (
            # Refuse to start a second copy while the pid file names a live process (a killed
            # daemon not yet reaped by init is a zombie, which kill -0 would still find).
            f"p=$(cat {shlex.quote(pidfile)} 2>/dev/null) && s=$(cat /proc/$p/stat 2>/dev/null)"
            f" && case \"${{s##*) }}\" in Z*) ;; *) exit 17;; esac; "
            f"mkdir -p {shlex.quote(str(Path(pidfile).parent))} {shlex.quote(str(Path(logfile).parent))}"
            f" && cd {shlex.quote(cwd or '/')}"
            f" && rm -f {shlex.quote(pidfile)}"
            f" && nohup setsid sh -c {shlex.quote('echo $$ > ' + shlex.quote(pidfile) + ' && exec ' + inner)}"
            f" >> {shlex.quote(logfile)} 2>&1 < /dev/null &"
        )
        res = self.run(["sh", "-c", script], sudo=True, check=False)
        if res.exit_code == 17:
            raise RemoteError(f"{self.host}: daemon of {pidfile} is already running")
        if res.exit_code != 0:
            raise RemoteError(f"{self.host}: cannot start {argv[0]}: {res.stderr.strip()[-200:]}")
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            pid = self._pid(pidfile)
            if pid is not None:
                return pid
            time.sleep(0.05)
        raise RemoteError(f"{self.host}: {argv[0]} wrote no pid to {pidfile}")

    def _pid(self, pidfile: str) -> int | None:
        res = self.run(["cat", pidfile], sudo=True, check=False)
        try:
            return int(res.stdout.strip()) if res.exit_code == 0 else None
        except ValueError:
            return None

    def is_running(self, pidfile: str) -> bool:
        # One round trip: the pid, then the process state letter, which follows the
        # parenthesised command name in /proc/PID/stat (Z = zombie, not running).
        script = 'p=$(cat "$1") && s=$(cat "/proc/$p/stat") && printf %s "${s##*) }"'
        res = self.run(["sh", "-c", script, "sh", pidfile], sudo=True, check=False)
        return res.exit_code == 0 and res.stdout[:1] not in ("", "Z")

    def signal(self, pidfile: str, signum: int) -> bool:
        script = 'p=$(cat "$1") && kill -"$2" "$p"'
        res = self.run(["sh", "-c", script, "sh", pidfile, str(int(signum))], sudo=True, check=False)
        return res.exit_code == 0

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except (OSError, paramiko.SSHException):
                pass
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None
