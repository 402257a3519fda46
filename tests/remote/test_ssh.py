"""The ssh provider for real: an OpenSSH server in each of three network namespaces."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.protocols import HarnessError, RemoteError
from tests.support.env import find_libfaketime, require_binary, require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]

NODES = ["n1", "n2", "n3"]
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
    "    print('error', type(e).__name__)\n"
)


@dataclass
class SSHLab:
    """Namespaces each running sshd, plus the files a client needs to reach them."""

    netns: Any
    key: Path
    known_hosts: Path
    other_known_hosts: Path

    def opts(self, **extra: Any) -> dict[str, Any]:
        hosts = {n: {"hostname": self.netns.ip(n)} for n in NODES}
        return {"user": "root", "key_file": str(self.key), "known_hosts": str(self.known_hosts),
                "connect_timeout": 3, "retries": 2, "dir": str(self.key.parent / "remote"),
                "hosts": hosts, **extra}


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip() if path.suffix else Path(f"{path}.pub").read_text().strip()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLab]:
    require_root()
    require_binary("ip", "iptables", "/usr/sbin/sshd", "ssh-keygen")
    from harness.providers.netns import NetnsProvider

    tmp = tmp_path_factory.mktemp("ssh")
    netns = NetnsProvider(tmp)
    try:
        remotes = netns.setup(NODES)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        client_pub = _keygen(tmp / "id_client")
        (tmp / "authorized_keys").write_text(client_pub + "\n")
        host_pub = _keygen(tmp / "host_key")
        other_pub = _keygen(tmp / "other_host_key")
        known, other = [], []
        for n in NODES:
            ip = netns.ip(n)
            cfg = tmp / f"sshd_{n}.conf"
            cfg.write_text(
                f"ListenAddress {ip}:22\nHostKey {tmp / 'host_key'}\n"
                # The second file is the non-root user's own (see `sudo_user`).
                f"AuthorizedKeysFile {tmp / 'authorized_keys'} .ssh/authorized_keys\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\n"
                "MaxStartups 50\nSubsystem sftp internal-sftp\n"
            )
            remotes[n].start_daemon(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)],
                                    pidfile=str(tmp / f"sshd_{n}.pid"), logfile=str(tmp / f"sshd_{n}.log"))
            known.append(f"{ip} {' '.join(host_pub.split()[:2])}")
            other.append(f"{ip} {' '.join(other_pub.split()[:2])}")
        (tmp / "known_hosts").write_text("\n".join(known) + "\n")
        (tmp / "other_known_hosts").write_text("\n".join(other) + "\n")
        for n in NODES:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection((netns.ip(n), 22), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"sshd in {n} did not come up: {(tmp / f'sshd_{n}.log').read_text()}") from None
                    time.sleep(0.1)
        yield SSHLab(netns, tmp / "id_client", tmp / "known_hosts", tmp / "other_known_hosts")
    finally:
        netns.teardown()


@pytest.fixture
def provider(lab: SSHLab) -> Iterator[Any]:
    from harness.providers.ssh import SSHProvider

    p = SSHProvider(lab.opts())
    try:
        p.setup(NODES)
        yield p
    finally:
        p.teardown()


def test_commands_quoting_env_stdin_files(provider: Any, tmp_path: Path) -> None:
    r = provider.remotes["n1"]
    nasty = "a b'c\"$HOME;`id`"
    assert r.run(["printf", "%s", nasty]).stdout == nasty
    assert r.run(["sh", "-c", 'printf %s "$FL_X"'], env={"FL_X": "x y"}).stdout == "x y"
    assert r.run(["cat"], stdin=b"piped").stdout == "piped"
    assert r.run(["sh", "-c", "exit 3"], check=False).exit_code == 3
    with pytest.raises(RemoteError, match="n1"):
        r.run(["false"])
    # Each host runs in its own namespace: its own address.
    results = provider.run_all(["ip", "-o", "-4", "addr", "show", "eth0"])
    assert all(provider.hosts[n].hostname in results[n].stdout for n in NODES)

    src = tmp_path / "payload.bin"
    src.write_bytes(bytes(range(256)) * 64)
    remote_path = str(tmp_path / "remote" / "sub" / "payload.bin")
    r.upload(src, remote_path)
    back = tmp_path / "back" / "payload.bin"
    r.download(remote_path, back)
    assert back.read_bytes() == src.read_bytes()
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "f.txt").write_text("deep")
    r.upload(tree, str(tmp_path / "tree_copy"))
    assert (tmp_path / "tree_copy" / "a" / "f.txt").read_text() == "deep"


def test_daemons_and_partitions(provider: Any, lab: SSHLab, tmp_path: Path) -> None:
    r1, r2 = provider.remotes["n1"], provider.remotes["n2"]
    ip2 = provider.hosts["n2"].hostname
    pidfile = str(tmp_path / "listener.pid")
    pid = r2.start_daemon([sys.executable, "-c", LISTENER, ip2, "7001"], pidfile=pidfile,
                          logfile=str(tmp_path / "listener.log"), cwd=str(tmp_path))
    assert pid > 0 and r2.is_running(pidfile)

    def dial(r: Any) -> str:
        return str(r.run([sys.executable, "-c", DIAL, ip2, "7001"]).stdout.strip())

    deadline = time.monotonic() + 5
    while dial(r1) != "hi" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dial(r1) == "hi"
    provider.partition({"n2": {"n1"}})
    assert dial(r1) == "error TimeoutError"
    assert dial(provider.remotes["n3"]) == "hi"
    provider.heal()
    assert dial(r1) == "hi"

    assert r2.signal(pidfile, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while r2.is_running(pidfile) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not r2.is_running(pidfile)


def test_teardown_removes_chain(lab: SSHLab) -> None:
    from harness.providers.ssh import CHAIN, SSHProvider

    p = SSHProvider(lab.opts())
    p.setup(NODES)
    p.partition({"n1": {"n2", "n3"}})
    p.teardown()
    for n in NODES:
        rules = lab.netns.remotes[n].run(["iptables-save"]).stdout
        assert CHAIN not in rules


def test_wrong_host_key_is_refused(lab: SSHLab) -> None:
    from harness.providers.ssh import SSHProvider

    p = SSHProvider(lab.opts(known_hosts=str(lab.other_known_hosts)))
    with pytest.raises(RemoteError, match=r"n\d .*host key does not match"):
        p.setup(NODES)
    unknown = SSHProvider(lab.opts(known_hosts=str(lab.key.parent / "empty_known_hosts")))
    with pytest.raises(RemoteError, match="host key unknown"):
        unknown.setup(NODES)


def test_host_key_checking_off_is_logged(lab: SSHLab, caplog: pytest.LogCaptureFixture) -> None:
    from harness.providers.ssh import SSHProvider

    p = SSHProvider(lab.opts(known_hosts=None, strict_host_key_checking=False))
    with caplog.at_level(logging.WARNING):
        try:
            p.setup(["n1"])
            assert p.remotes["n1"].run(["true"]).exit_code == 0
        finally:
            p.teardown()
    assert any("host key checking is OFF" in rec.message for rec in caplog.records)


def test_unreachable_host_names_it(lab: SSHLab) -> None:
    from harness.providers.ssh import SSHProvider

    opts = lab.opts(connect_timeout=0.5, retries=1)
    opts["hosts"] = {"n1": {"hostname": f"10.77.{lab.netns.subnet}.200"}}
    with pytest.raises(RemoteError) as err:
        SSHProvider(opts).setup(["n1"])
    msg = str(err.value)
    assert "\n" not in msg and "n1" in msg and "unreachable" in msg


def test_config_errors_name_the_field() -> None:
    from harness.providers.ssh import SSHProvider, host_configs

    with pytest.raises(HarnessError, match=r"provider_opts.hosts.n2: missing"):
        host_configs({"hosts": {"n1": {"hostname": "h"}}}, ["n1", "n2"])
    with pytest.raises(HarnessError, match=r"provider_opts.hosts.n1.pasword: unknown"):
        host_configs({"hosts": {"n1": {"hostname": "h", "pasword": "x"}}}, ["n1"])
    with pytest.raises(HarnessError, match=r"provider_opts.bogus: unknown"):
        SSHProvider({"bogus": 1, "hosts": {}}).setup(["n1"])


def test_command_line_quotes_every_argument() -> None:
    from harness.remotes.ssh import SSHHost, SSHRemote

    r = SSHRemote(SSHHost(node="n1", hostname="h", user="alice"))
    line = r.command_line(["echo", "a b", "$(x)"], sudo=True, env={"K": "v w"})
    assert line == "sudo -n -- env 'K=v w' echo 'a b' '$(x)'"
    assert SSHRemote(SSHHost(node="n1", hostname="h")).command_line(["id"], sudo=True) == "id"


def test_etcd_over_ssh(lab: SSHLab, tmp_path: Path) -> None:
    """etcd started, partitioned and killed entirely through the ssh provider."""
    require_binary("etcd", "etcdctl")
    from harness.db.etcd import EtcdDB
    from harness.db.etcd_client import EtcdClient
    from harness.providers.ssh import SSHProvider

    p = SSHProvider(lab.opts())
    test = {"name": "etcd-ssh", "seed": 5, "nemesis": {"faults": ["partition", "kill"]},
            "db_opts": {"dir": str(tmp_path / "etcd")}}
    db = EtcdDB(test)
    try:
        db.setup(p, p.setup(NODES), test)
        lead = db.wait_for_leader(20)
        c = {n: EtcdClient(p.addresses(n).client, timeout=1.0) for n in NODES}
        assert c[lead].put("k", 1).status == "ok"
        rest = [n for n in NODES if n != lead]
        p.partition({lead: set(rest), **{n: {lead} for n in rest}})
        deadline = time.monotonic() + 20
        while c[rest[0]].put("k", 2).status != "ok":
            assert time.monotonic() < deadline, "majority never took a write"
            time.sleep(0.2)
        assert c[lead].get("k", read="serializable").value == 1  # stale minority read
        p.heal()
        db.kill(rest[0])
        assert not p.remotes[rest[0]].is_running(db._pidfile(rest[0]))
        db.start(rest[0])
        deadline = time.monotonic() + 20
        while c[rest[0]].get("k").value != 2:
            assert time.monotonic() < deadline, "restarted member never served the write"
            time.sleep(0.2)
        db.collect(lead, tmp_path / "out")
        assert (tmp_path / "out" / "etcd.log").stat().st_size > 0
    finally:
        db.teardown()
        p.teardown()
    dirs = list((tmp_path / "etcd").glob("faultline-etcd-n1.*"))  # the member's private dir, root's
    assert len(dirs) == 1 and dirs[0].stat().st_uid == 0 and dirs[0].stat().st_mode & 0o077 == 0
    assert not (dirs[0] / "data").exists()


def test_whole_raftkv_run_over_ssh(lab: SSHLab, tmp_path: Path) -> None:
    """`faultline run`'s engine against the sshd hosts: code upload, faults, collection."""
    import json

    from harness.run.config import validate
    from harness.run.runner import Run

    test = validate({
        "name": "raftkv-ssh", "db": "raftkv", "provider": "ssh", "nodes": 3, "seed": 21,
        "time_limit": 8, "warmup": 1, "rate": 30, "concurrency": 3,
        "nemesis": {"faults": ["partition"], "interval": 2.5, "duration": 1.5},
        "provider_opts": lab.opts(), "db_opts": {"dir": str(tmp_path / "hosts")},
        "store": str(tmp_path / "store"), "recovery_timeout": 20,
    })
    outcome = Run(test).execute()
    assert outcome.failure is None, outcome.failure
    assert outcome.results is not None and outcome.results.valid is True, outcome.results
    history = [json.loads(line) for line in (outcome.run_dir / "history.jsonl").read_text().splitlines()]
    assert any(op["type"] == "ok" and op["process"] != "nemesis" for op in history)
    assert any(op["process"] == "nemesis" and "partition" in op["f"] for op in history)
    for n in NODES:
        # Uploaded as an archive and unpacked on the host, in a private dir made for the run;
        # logs fetched back over SFTP.
        (home,) = (tmp_path / "hosts").glob(f"faultline-raftkv-{n}.*")
        assert home.stat().st_mode & 0o077 == 0
        assert (home / "code" / "nodes" / "__main__.py").exists()
        assert (outcome.run_dir / "nodes" / n / "events.jsonl").stat().st_size > 0
    rules = lab.netns.remotes["n1"].run(["iptables-save"]).stdout
    assert "faultline-in" not in rules


def test_files_of_root_daemons_never_go_where_another_user_could_plant_code(lab: SSHLab, tmp_path: Path) -> None:
    """A local user of a host makes the node's directory first, with a sitecustomize.py the
    root daemon would import from its PYTHONPATH: refused in one line, nothing runs from it.
    With the default base each node gets a fresh owner-only directory instead."""
    from harness.db.raftkv import RaftkvDB
    from harness.providers.ssh import SSHProvider

    nobody = pwd.getpwnam("nobody").pw_uid
    shared = tmp_path / "shared"  # a world-writable, sticky dir like /tmp
    shared.mkdir()
    shared.chmod(0o1777)
    planted = shared / "faultline-raftkv"
    marker = tmp_path / "pwned"
    for n in NODES:
        (planted / n / "code").mkdir(parents=True)
        (planted / n / "code" / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('{n}')\n")
        for d in (planted / n, planted / n / "code"):
            os.chown(d, nobody, nobody)
    os.chown(planted, nobody, nobody)
    test = {"nodes": NODES, "raft": {}, "db_opts": {"dir": str(planted), "python": sys.executable}}
    p = SSHProvider(lab.opts(), nodes=NODES)
    db = RaftkvDB(test)
    try:
        with pytest.raises(RemoteError) as err:
            db.setup(p, p.setup(NODES), test)
        msg = str(err.value)
        assert "\n" not in msg and f"refusing {planted}" in msg and f"owned by uid {nobody}" in msg, msg
    finally:
        db.teardown()
        p.teardown()
    assert not marker.exists()
    assert sorted(q.name for q in planted.iterdir()) == NODES  # nothing of ours went in

    clock = SSHProvider(lab.opts(dir=str(planted)), clock=True)  # the provider's scratch dir too
    try:
        if find_libfaketime() is not None:
            with pytest.raises(RemoteError, match=f"owned by uid {nobody}"):
                clock.setup(["n1"])
    finally:
        clock.teardown()


def test_power_loss_and_corruption_over_ssh(lab: SSHLab, tmp_path: Path) -> None:
    """Data dirs on faultfs on the ssh hosts (uploaded with mfusepy into a private dir,
    mounted in sshd's mount namespace, which the nodes share): coordinated power losses and a
    corrupted minority, a valid run, the corrupt fault finding the WAL on the mount, nothing
    left behind."""
    import json

    from harness.run.config import validate
    from harness.run.runner import Run
    from tests.support.env import procs_naming
    from tests.support.faultfs_mount import require_fuse

    require_fuse()
    base = tmp_path / "hosts"
    base.mkdir(mode=0o755)
    test = validate({
        "name": "raftkv-ssh-disks", "db": "raftkv", "provider": "ssh", "nodes": 3, "seed": 22,
        "time_limit": 10, "warmup": 1, "rate": 30, "concurrency": 3,
        "nemesis": {"faults": ["lose-unsynced", "corrupt"], "schedule": "mix", "interval": 3, "duration": 1,
                    "power_losses": ["all"], "corruptions": ["bitflip"], "corrupt_files": ["wal"]},
        "provider_opts": lab.opts(dir=str(base)), "store": str(tmp_path / "store"), "recovery_timeout": 20,
    })
    outcome = Run(test).execute()
    assert outcome.failure is None, outcome.failure
    assert outcome.results is not None, outcome.failure
    assert outcome.results.valid is True, outcome.results.message()
    history = [json.loads(line) for line in (outcome.run_dir / "history.jsonl").read_text().splitlines()]
    losses = [op["value"] for op in history if op.get("f") == "start-lose-unsynced" and "error" not in op]
    assert losses and all(set(v["lost"]) == set(NODES) for v in losses)
    corrupted = [op["value"] for op in history if op.get("f") == "start-corrupt" and "error" not in op]
    assert corrupted and corrupted[0]["file"].startswith("wal/") and corrupted[0]["data_end"] > 0
    assert procs_naming(str(base)) == []  # every faultfs stopped
    assert not list(base.glob("faultline-disk-*"))  # its private dirs removed

def test_clock_control_only_when_asked_and_probed(lab: SSHLab) -> None:
    from harness.providers.ssh import SSHProvider

    plain = SSHProvider(lab.opts())
    try:
        plain.setup(["n1"])
        assert not plain.supports_clock and plain.node_env("n1") == {}
        with pytest.raises(HarnessError, match="clock faults need libfaketime"):
            plain.set_clock("n1", 5.0)
    finally:
        plain.teardown()
    if find_libfaketime() is None:
        pytest.skip("needs libfaketime (Debian package faketime)")
    asked = SSHProvider(lab.opts(), clock=True)
    try:
        asked.setup(["n1"])
        if not asked.supports_clock:
            assert "libfaketime" in asked.clock_refusal
            pytest.skip(f"libfaketime unusable here: {asked.clock_refusal}")
        asked.set_clock("n1", 3600.0)
        out = asked.remotes["n1"].run(["python3", "-c", "import time; print(time.time())"],
                                      env=asked.node_env("n1")).stdout
        assert float(out) - time.time() > 3500
    finally:
        asked.teardown()


def test_connect_retries_until_sshd_is_up(lab: SSHLab, caplog: pytest.LogCaptureFixture) -> None:
    """A host whose sshd comes up late is reached on a later attempt."""
    import threading

    from harness.remotes.ssh import SSHHost, SSHRemote

    ip, tmp = lab.netns.ip("n1"), lab.key.parent
    cfg = tmp / "sshd_late.conf"
    cfg.write_text((tmp / "sshd_n1.conf").read_text().replace(f"{ip}:22", f"{ip}:2222"))
    (tmp / "known_hosts_late").write_text(
        lab.known_hosts.read_text().splitlines()[0].replace(ip, f"[{ip}]:2222", 1) + "\n")
    pidfile = str(tmp / "sshd_late.pid")
    starter = threading.Timer(0.8, lambda: lab.netns.remotes["n1"].start_daemon(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)], pidfile=pidfile, logfile=str(tmp / "sshd_late.log")))
    starter.start()
    remote = SSHRemote(SSHHost(node="n1", hostname=ip, port=2222, key_file=str(lab.key),
                               known_hosts=str(tmp / "known_hosts_late"), connect_timeout=2, retries=5))
    try:
        with caplog.at_level(logging.INFO, logger="harness.remotes.ssh"):
            remote.connect()
        assert remote.run(["echo", "late"]).stdout == "late\n"
        assert any("failed (attempt 1)" in rec.message for rec in caplog.records)
    finally:
        starter.join()
        remote.close()
        lab.netns.remotes["n1"].signal(pidfile, signal.SIGKILL)


# -- a non-root login user that gets root through sudo ------------------------------------

SUDO_USER = "flsudo"
SUDOERS = Path("/etc/sudoers.d/faultline-flsudo")
#: The system interpreter: the non-root user cannot reach the controller's own under /root.
HOST_PYTHON = "/usr/bin/python3"


def _remove_sudo_user() -> None:
    SUDOERS.unlink(missing_ok=True)
    # --force: sshd session processes of the user may still be closing.
    subprocess.run(["userdel", "--force", "--remove", SUDO_USER], capture_output=True, check=False)


@pytest.fixture(scope="module")
def sudo_user(lab: SSHLab) -> Iterator[Path]:
    """`flsudo`, a login user with the client's key and no sudo rights yet; removed with its
    home afterwards, also when a test failed. Yields a root-owned work dir it can traverse."""
    require_binary("useradd", "userdel", "visudo", "/usr/bin/sudo", HOST_PYTHON)
    import shutil
    import tempfile

    _remove_sudo_user()  # what a crashed earlier run left
    work = Path(tempfile.mkdtemp(prefix="flsudo-"))
    work.chmod(0o755)
    try:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", SUDO_USER], check=True)
        # Without PAM sshd refuses a locked account ("!" password); "*" is unlocked, no password.
        subprocess.run(["usermod", "-p", "*", SUDO_USER], check=True)
        home = Path(subprocess.run(["getent", "passwd", SUDO_USER], capture_output=True, text=True,
                                   check=True).stdout.split(":")[5])
        (home / ".ssh").mkdir(mode=0o700)
        (home / ".ssh" / "authorized_keys").write_text(Path(f"{lab.key}.pub").read_text())
        for path in (home / ".ssh", home / ".ssh" / "authorized_keys"):
            shutil.chown(path, SUDO_USER, SUDO_USER)
        yield work
    finally:
        _remove_sudo_user()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def sudo_rule(sudo_user: Path) -> Iterator[Path]:
    """Passwordless sudo for flsudo, as root only. Not narrowed to a command list: the harness
    runs `sh -c` scripts as root, which a list would have to allow, so it would limit nothing."""
    SUDOERS.write_text(f"{SUDO_USER} ALL=(root) NOPASSWD: ALL\n")
    SUDOERS.chmod(0o440)
    try:
        subprocess.run(["visudo", "-c", "-q", "-f", str(SUDOERS)], check=True)
        yield sudo_user
    finally:
        SUDOERS.unlink(missing_ok=True)


def _sudo_opts(lab: SSHLab, work: Path) -> dict[str, Any]:
    return lab.opts(user=SUDO_USER, dir=str(work / "remote"))


def _uid_of(pid: int) -> int:
    line = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("Uid:"))
    return int(line.split()[1])


def test_non_root_user_without_sudo_is_one_clear_line(lab: SSHLab, sudo_user: Path) -> None:
    from harness.providers.ssh import SSHProvider

    p = SSHProvider(_sudo_opts(lab, sudo_user))
    with pytest.raises(RemoteError) as err:
        p.setup(NODES)
    msg = str(err.value)
    assert "\n" not in msg and f"{SUDO_USER}@" in msg and "sudo -n refused" in msg, msg
    assert not (sudo_user / "remote").exists()  # nothing was made as root


def test_non_root_user_gets_root_through_sudo(lab: SSHLab, sudo_rule: Path, tmp_path: Path) -> None:
    from harness.providers.ssh import CHAIN, SSHProvider

    work = sudo_rule
    rootdir = work / "rootonly"
    rootdir.mkdir(mode=0o755)
    p = SSHProvider(_sudo_opts(lab, work), clock=True)
    try:
        p.setup(NODES)
        r1, r2 = p.remotes["n1"], p.remotes["n2"]
        assert r1.run(["id", "-un"]).stdout.strip() == SUDO_USER
        assert r1.run(["id", "-un"], sudo=True).stdout.strip() == "root"
        # Quoting survives sudo and env: each argument arrives whole, nothing is interpreted.
        nasty = "a b'c\"$HOME;`id`; rm -rf /nonexistent && echo pwned"
        out = r1.run(["sh", "-c", 'printf "%s|%s|%s" "$1" "$FL_X" "$#"', "sh", nasty],
                     sudo=True, env={"FL_X": nasty}).stdout
        assert out == f"{nasty}|{nasty}|1"

        # Writing under a root-owned dir: refused to the user, done with sudo.
        target = str(rootdir / "by-sudo.txt")
        write = ["sh", "-c", 'printf %s "$2" > "$1"', "sh", target, "x;y"]
        assert r1.run(write, check=False).exit_code != 0
        r1.run(write, sudo=True)
        assert Path(target).read_text() == "x;y" and Path(target).stat().st_uid == 0

        # Transfers where the user's own rights do not reach go through sudo.
        payload = bytes(range(256)) * 64  # not valid UTF-8: the sudo path must carry raw bytes
        (tmp_path / "payload.bin").write_bytes(payload)
        r1.upload(tmp_path / "payload.bin", str(rootdir / "up" / "payload.bin"))
        assert (rootdir / "up" / "payload.bin").read_bytes() == payload
        (tmp_path / "tree" / "a").mkdir(parents=True)
        (tmp_path / "tree" / "a" / "f.txt").write_text("deep")
        r1.upload(tmp_path / "tree", str(rootdir / "tree"))
        assert (rootdir / "tree" / "a" / "f.txt").read_text() == "deep"
        secret = rootdir / "secret.bin"
        secret.write_bytes(payload[::-1])
        secret.chmod(0o600)
        r1.download(str(secret), tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == payload[::-1]
        staged = r1.run(["sh", "-c", "ls -d /tmp/faultline-upload.* 2>/dev/null || true"]).stdout
        assert staged.strip() == ""  # staging dirs are removed

        # A daemon started, seen and signalled as root; a partition made with iptables.
        ip2 = p.hosts["n2"].hostname
        pidfile = str(rootdir / "run" / "listener.pid")
        pid = r2.start_daemon([HOST_PYTHON, "-c", LISTENER, ip2, "7001"], pidfile=pidfile,
                              logfile=str(rootdir / "run" / "listener.log"), cwd=str(work))
        assert _uid_of(pid) == 0 and r2.is_running(pidfile)

        def dial(r: Any) -> str:
            return str(r.run([HOST_PYTHON, "-c", DIAL, ip2, "7001"]).stdout.strip())

        deadline = time.monotonic() + 5
        while dial(r1) != "hi" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dial(r1) == "hi"
        p.partition({"n2": {"n1"}})
        rules = lab.netns.remotes["n2"].run(["iptables-save"]).stdout
        assert f"-A {CHAIN} -s {p.hosts['n1'].hostname}/32 -j DROP" in rules
        assert dial(r1) == "error TimeoutError" and dial(p.remotes["n3"]) == "hi"
        p.heal()
        assert dial(r1) == "hi"
        assert r2.signal(pidfile, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while r2.is_running(pidfile) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not r2.is_running(pidfile)

        # Clock control: shims and control files land in the root-owned scratch dir.
        if find_libfaketime() is not None:
            assert p.supports_clock, p.clock_refusal
            p.set_clock("n1", 3600.0)
            out = r1.run([HOST_PYTHON, "-c", "import time; print(time.time())"], sudo=True,
                         env=p.node_env("n1")).stdout
            assert float(out) - time.time() > 3500
            scratch = Path(p.dirs["n1"])  # made for the run under provider_opts.dir, root's
            assert scratch.parent == work / "remote" and scratch.stat().st_mode & 0o077 == 0
            assert (scratch / "clocks" / "n1.clock").stat().st_uid == 0 == scratch.stat().st_uid
            # the run folder's copy of the node's clock, read through the remote (root's files)
            p.collect_clock("n1", work / "collected")
            assert (work / "collected" / "clock.log").read_text().splitlines()[1:] == ["offset 3600.0", "rate 1.0"]
            last = (work / "collected" / "clock.applied").read_text().split()
            assert last[1] == "2" and float(last[3]) - float(last[2]) == pytest.approx(3600.0, abs=0.01)
    finally:
        p.teardown()
    assert not (work / "remote").exists() or list((work / "remote").iterdir()) == []  # scratch removed
    for n in NODES:
        assert CHAIN not in lab.netns.remotes[n].run(["iptables-save"]).stdout


def test_whole_raftkv_run_over_ssh_as_non_root(lab: SSHLab, sudo_rule: Path) -> None:
    """The run engine as `flsudo`: nodes run as root through sudo, partitions and kills too."""
    import json
    import shutil

    from harness.run.config import validate
    from harness.run.runner import Run
    from tests.support.env import procs_naming

    hosts = sudo_rule / "hosts"
    hosts.mkdir()
    shutil.chown(hosts, SUDO_USER, SUDO_USER)  # the user's own work dir on its hosts
    test = validate({
        "name": "raftkv-ssh-sudo", "db": "raftkv", "provider": "ssh", "nodes": 3, "seed": 22,
        "time_limit": 8, "warmup": 1, "rate": 30, "concurrency": 3,
        "nemesis": {"faults": ["partition", "kill"], "interval": 2.5, "duration": 1.5},
        "provider_opts": _sudo_opts(lab, sudo_rule),
        "db_opts": {"dir": str(hosts), "python": HOST_PYTHON},
        "store": str(sudo_rule / "store"), "recovery_timeout": 20,
    })
    try:
        outcome = Run(test).execute()
        assert outcome.failure is None, outcome.failure
        assert outcome.results is not None and outcome.results.valid is True, outcome.results
        history = [json.loads(ln) for ln in (outcome.run_dir / "history.jsonl").read_text().splitlines()]
        assert any(op["type"] == "ok" and op["process"] != "nemesis" for op in history)
        done = {op["f"] for op in history if op["process"] == "nemesis" and "error" not in op}
        assert "start-partition" in done, done
        for n in NODES:
            # Node files were written by root (the node ran through sudo) and still collected,
            # in a dir the login user made for the run.
            (home,) = hosts.glob(f"faultline-raftkv-{n}.*")
            assert home.stat().st_uid == pwd.getpwnam(SUDO_USER).pw_uid and home.stat().st_mode & 0o077 == 0
            assert (home / "node.log").stat().st_uid == 0
            assert (outcome.run_dir / "nodes" / n / "events.jsonl").stat().st_size > 0
        assert "faultline-in" not in lab.netns.remotes["n1"].run(["iptables-save"]).stdout
    finally:
        leftover = procs_naming(str(hosts))
        for pid in leftover:
            subprocess.run(["kill", "-9", str(pid)], check=False)
    assert leftover == [], "node processes outlived the run"
