"""The faultfs process: start and stop, death and clean-up, one-line refusals, the control
socket, disk-full, and the corners of the FUSE plumbing."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultfs.cli import mounted
from tests.support.env import REPO
from tests.support.faultfs_mount import Mount, fsync_path, read, write_file

pytestmark = pytest.mark.root


def _faultfs(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "faultfs", *args]
    if user is not None:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to run as another user")
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=30)


def _wait_unmounted(mnt: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while mounted(mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mounted(mnt), f"{mnt} is still mounted"


def test_sigterm_unmounts_and_removes_the_socket(ffs: Mount) -> None:
    assert ffs.proc is not None
    ffs.proc.send_signal(signal.SIGTERM)
    assert ffs.proc.wait(timeout=10) == 0
    assert not mounted(ffs.mnt) and not ffs.control.exists()


def test_sigkill_leaves_nothing_mounted_and_a_new_faultfs_starts(ffs: Mount) -> None:
    write_file(ffs.path("kept"), b"x", sync=True)
    fsync_path(str(ffs.mnt))
    os.unlink(ffs.path("kept"))  # stashed in the trash: left behind by the dead faultfs
    assert ffs.proc is not None
    ffs.proc.kill()
    ffs.proc.wait(timeout=10)
    _wait_unmounted(ffs.mnt)  # fusermount3's auto_unmount
    r = _faultfs("umount", str(ffs.mnt))
    assert r.returncode == 0 and r.stderr == ""
    again = Mount(ffs.root).start()  # stale socket and trash are cleared
    try:
        assert os.listdir(again.mnt) == []
        assert "dropping entries left by an earlier faultfs" in again.log.read_text()
    finally:
        again.stop()


def test_umount_of_a_dead_mount(fuse_root: Path) -> None:
    m = Mount(fuse_root / "dead").start()
    try:
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGSTOP)  # hung server: unmount must not wait for it
        r = _faultfs("umount", str(m.mnt))
        assert r.returncode == 0, r.stderr
        assert not mounted(m.mnt)
    finally:
        if m.proc is not None:
            os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait(timeout=10)
        m.stop()


@pytest.mark.parametrize("case", ["no-backing", "mounted", "socket-in-use", "nested"])
def test_mount_refusals_are_one_line(ffs: Mount, tmp_path: Path, case: str) -> None:
    other = tmp_path / "other"
    other.mkdir()
    args = {
        "no-backing": [str(other), "--backing", str(tmp_path / "nope"), "--control", str(tmp_path / "c")],
        "mounted": [str(ffs.mnt), "--backing", str(other), "--control", str(tmp_path / "c")],
        "socket-in-use": [str(other), "--backing", str(ffs.backing), "--control", str(ffs.control)],
        "nested": [str(other / "m"), "--backing", str(other), "--control", str(tmp_path / "c")],
    }[case]
    if case == "nested":
        (other / "m").mkdir()
    r = _faultfs("mount", *args)
    want = {"no-backing": "not a directory", "mounted": "already a mount point",
            "socket-in-use": "another faultfs is serving", "nested": "must not contain"}[case]
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("faultfs: ") and want in r.stderr


def test_refuses_without_root(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    r = _faultfs("mount", str(tmp_path), "--backing", str(tmp_path), "--control", "/tmp/x",
                 user="65534")
    assert r.returncode == 1 and r.stderr.startswith("faultfs: needs root")
    assert r.stderr.count("\n") == 1


def test_control_socket(ffs: Mount) -> None:
    assert stat.S_IMODE(ffs.control.stat().st_mode) == 0o600
    idle = socket.socket(socket.AF_UNIX)  # a client that never closes blocks nobody else
    idle.connect(str(ffs.control))
    with socket.socket(socket.AF_UNIX) as s, s.makefile("rwb") as f:
        s.connect(str(ffs.control))
        for line in (b"status\n", b"frobnicate\n", b"disk-full maybe\n", b"x" * 5000 + b"\n"):
            f.write(line)
            f.flush()
        import json

        replies = [json.loads(f.readline()) for _ in range(4)]
    assert replies[0]["ok"] and replies[0]["generation"] == 1
    assert not replies[1]["ok"] and "unknown command 'frobnicate'" in replies[1]["error"]
    assert not replies[2]["ok"] and "disk-full on|off" in replies[2]["error"]
    assert replies[3] == {"ok": False, "error": "command line too long"}
    r = _faultfs("ctl", str(ffs.control), "status")
    assert r.returncode == 0 and '"ok": true' in r.stdout
    r = _faultfs("ctl", str(ffs.control.parent / "none.sock"), "status")
    assert r.returncode == 1 and r.stderr.startswith("faultfs: ") and "no faultfs answers" in r.stderr
    idle.close()


def test_disk_full(ffs: Mount) -> None:
    write_file(ffs.path("f"), b"abc")
    os.mkdir(ffs.path("d"))
    ffs.ctl("disk-full on")
    fd = os.open(ffs.path("f"), os.O_WRONLY)
    for what, call in [
        ("write", lambda: os.write(fd, b"x")),
        ("extend", lambda: os.ftruncate(fd, 100)),
        ("create", lambda: write_file(ffs.path("g"), b"")),
        ("mkdir", lambda: os.mkdir(ffs.path("e"))),
        ("symlink", lambda: os.symlink("f", ffs.path("s"))),
    ]:
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.ENOSPC, what
    os.ftruncate(fd, 1)  # cutting frees space: allowed
    os.close(fd)
    assert os.statvfs(ffs.mnt).f_bavail == 0
    os.rename(ffs.path("f"), ffs.path("f2"))
    os.unlink(ffs.path("f2"))
    assert ffs.ctl("status")["disk_full"] is True
    ffs.ctl("disk-full off")
    write_file(ffs.path("g"), b"fine")
    assert read(ffs.path("g")) == b"fine" and os.statvfs(ffs.mnt).f_bavail > 0


def test_state_dir_is_hidden_and_reserved(ffs: Mount) -> None:
    assert (ffs.backing / ".faultfs").is_dir()
    assert os.listdir(ffs.mnt) == []
    assert not os.path.exists(ffs.path(".faultfs"))
    with pytest.raises(OSError) as e:
        os.mkdir(ffs.path(".faultfs"))
    assert e.value.errno == errno.EPERM
    os.mkdir(ffs.path("sub"))
    os.mkdir(ffs.path("sub/.faultfs"))  # reserved in the root only


def test_new_files_belong_to_the_caller(ffs: Mount) -> None:
    os.chmod(ffs.mnt, 0o777)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c"]
    # relative paths from a cwd in the mount: the test's own tmp dir is closed to others
    code = "import os; os.mkdir('d'); open('d/f', 'w').write('x')"
    r = subprocess.run([*nobody, code], cwd=ffs.mnt, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for p in ("d", "d/f"):
        st = os.stat(ffs.path(p))
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    os.chmod(ffs.path("d"), 0o700)
    os.chown(ffs.path("d"), 0, 0)
    r = subprocess.run([*nobody, "open('d/f')"], cwd=ffs.mnt, capture_output=True, text=True)
    assert r.returncode == 1 and "Permission denied" in r.stderr  # default_permissions


def test_unlinked_open_file_and_ftruncate(ffs: Mount) -> None:
    fd = os.open(ffs.path("tmp"), os.O_RDWR | os.O_CREAT, 0o600)
    os.unlink(ffs.path("tmp"))
    os.write(fd, b"still here")
    os.ftruncate(fd, 5)
    assert os.pread(fd, 100, 0) == b"still"
    os.close(fd)
    assert os.listdir(ffs.backing) == [".faultfs"]  # no .fuse_hidden* file


def test_rename_noreplace_is_refused_not_ignored(ffs: Mount) -> None:
    write_file(ffs.path("a"), b"a")
    write_file(ffs.path("b"), b"b")
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_noreplace = -100, 1
    rc = libc.renameat2(at_fdcwd, ffs.path("a").encode(), at_fdcwd, ffs.path("b").encode(),
                        rename_noreplace)
    assert rc == -1 and ctypes.get_errno() in (errno.EINVAL, errno.EEXIST)
    assert read(ffs.path("b")) == b"b"


def test_times(ffs: Mount) -> None:
    write_file(ffs.path("f"), b"")
    os.utime(ffs.path("f"), ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(ffs.path("f"))
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456)
    os.utime(ffs.path("f"))  # UTIME_NOW
    assert abs(os.stat(ffs.path("f")).st_mtime - time.time()) < 5
    subprocess.run(["touch", "-a", "-d", "@7", ffs.path("f")], check=True)  # mtime: UTIME_OMIT
    st2 = os.stat(ffs.path("f"))
    assert st2.st_atime_ns == 7_000_000_000 and abs(st2.st_mtime - time.time()) < 5


def test_symlink_and_hard_link_survive_with_directory_fsync(ffs: Mount) -> None:
    write_file(ffs.path("f"), b"data", sync=True)
    os.symlink("f", ffs.path("s"))
    os.link(ffs.path("f"), ffs.path("h"))
    fsync_path(str(ffs.mnt))
    ffs.ctl("lose-unsynced")
    assert os.readlink(ffs.path("s")) == "f" and read(ffs.path("s")) == b"data"
    assert os.stat(ffs.path("h")).st_ino == os.stat(ffs.path("f")).st_ino
    assert os.stat(ffs.path("f")).st_nlink == 2


def test_readdir_names_inodes_and_types(ffs: Mount) -> None:
    os.mkdir(ffs.path("d"))
    write_file(ffs.path("d/f"), b"")
    os.symlink("f", ffs.path("d/s"))
    with os.scandir(ffs.path("d")) as it:
        ents = {e.name: e for e in it}
    assert sorted(ents) == ["f", "s"]
    assert ents["f"].inode() == os.stat(ffs.path("d/f")).st_ino
    assert ents["s"].is_symlink() and ents["f"].is_file(follow_symlinks=False)
    out = subprocess.run(["ls", "-a", ffs.path("d")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [".", "..", "f", "s"]
