"""Through a real mount: write, fsync some, lose the unsynced state, compare what survives with
what POSIX promises (fsync of a file for its data and size, of a directory for its entries)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.faultfs_mount import Mount, fsync_path, read, write_file

pytestmark = pytest.mark.root


def test_fsynced_data_survives_unsynced_append_is_lost(ffs: Mount) -> None:
    p = ffs.path("wal")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, b"rec1;rec2;")
    os.fsync(fd)
    os.write(fd, b"rec3;")
    os.close(fd)
    fsync_path(str(ffs.mnt))
    assert read(p) == b"rec1;rec2;rec3;"  # reads see the volatile state
    out = ffs.ctl("lose-unsynced")
    assert read(p) == b"rec1;rec2;"
    assert out["files_rolled_back"] == 1 and out["bytes_lost"] == 5


def test_fdatasync_counts_like_fsync(ffs: Mount) -> None:
    p = ffs.path("f")
    write_file(p, b"")
    fsync_path(str(ffs.mnt))
    fd = os.open(p, os.O_WRONLY)
    os.write(fd, b"data")
    os.fdatasync(fd)
    os.close(fd)
    ffs.ctl("lose-unsynced")
    assert read(p) == b"data"


def test_create_without_directory_fsync_is_lost(ffs: Mount) -> None:
    write_file(ffs.path("new"), b"payload", sync=True)  # the file's fsync is not enough
    out = ffs.ctl("lose-unsynced")
    assert not os.path.exists(ffs.path("new"))
    assert out["paths_lost"] == ["new"]


def test_create_with_directory_fsync_but_no_file_fsync_is_empty(ffs: Mount) -> None:
    write_file(ffs.path("new"), b"payload")
    fsync_path(str(ffs.mnt))
    ffs.ctl("lose-unsynced")
    assert read(ffs.path("new")) == b""


def test_rename_into_place_without_directory_fsync_is_lost(ffs: Mount) -> None:
    write_file(ffs.path("state"), b"old", sync=True)
    fsync_path(str(ffs.mnt))
    write_file(ffs.path("state.tmp"), b"new", sync=True)
    os.rename(ffs.path("state.tmp"), ffs.path("state"))
    assert read(ffs.path("state")) == b"new"
    ffs.ctl("lose-unsynced")
    assert read(ffs.path("state")) == b"old"
    assert not os.path.exists(ffs.path("state.tmp"))  # its create was never durable either


def test_rename_into_place_with_directory_fsync_survives(ffs: Mount) -> None:
    write_file(ffs.path("state"), b"old", sync=True)
    fsync_path(str(ffs.mnt))
    write_file(ffs.path("state.tmp"), b"new", sync=True)
    os.rename(ffs.path("state.tmp"), ffs.path("state"))
    fsync_path(str(ffs.mnt))
    out = ffs.ctl("lose-unsynced")
    assert read(ffs.path("state")) == b"new"
    assert sorted(os.listdir(ffs.mnt)) == ["state"]
    assert out["paths_lost_count"] == 0 and out["paths_restored_count"] == 0


def test_unlink_without_directory_fsync_comes_back(ffs: Mount) -> None:
    os.mkdir(ffs.path("snap"))
    write_file(ffs.path("snap/s1"), b"snapshot", sync=True)
    fsync_path(ffs.path("snap"))
    fsync_path(str(ffs.mnt))
    os.unlink(ffs.path("snap/s1"))
    os.rmdir(ffs.path("snap"))
    assert ffs.ctl("status")["trash"] == 2
    out = ffs.ctl("lose-unsynced")
    assert read(ffs.path("snap/s1")) == b"snapshot"
    assert out["paths_restored"] == ["snap/", "snap/s1"]
    assert ffs.ctl("status")["trash"] == 0
    assert not any((ffs.backing / ".faultfs" / "trash").iterdir())


def test_unsynced_overwrite_and_truncate_are_undone(ffs: Mount) -> None:
    p = ffs.path("seg")
    write_file(p, b"0123456789", sync=True)
    fsync_path(str(ffs.mnt))
    fd = os.open(p, os.O_RDWR)
    os.pwrite(fd, b"XX", 3)
    os.ftruncate(fd, 6)
    os.pwrite(fd, b"tail", 8)
    os.close(fd)
    assert read(p) == b"012XX5\0\0tail"
    ffs.ctl("lose-unsynced")
    assert read(p) == b"0123456789"


def test_fsync_after_unsynced_changes_makes_them_durable(ffs: Mount) -> None:
    p = ffs.path("seg")
    write_file(p, b"0123456789", sync=True)
    fsync_path(str(ffs.mnt))
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, 4)
    os.pwrite(fd, b"ab", 2)
    os.fsync(fd)
    os.close(fd)
    ffs.ctl("lose-unsynced")
    assert read(p) == b"01ab"


def test_o_dsync_writes_are_durable(ffs: Mount) -> None:
    p = ffs.path("log")
    write_file(p, b"")
    fsync_path(str(ffs.mnt))
    fd = os.open(p, os.O_WRONLY | os.O_DSYNC)
    os.write(fd, b"synced")
    os.close(fd)
    ffs.ctl("lose-unsynced")
    assert read(p) == b"synced"


def test_subdirectory_needs_its_parent_fsynced(ffs: Mount) -> None:
    os.makedirs(ffs.path("wal/deep"))
    write_file(ffs.path("wal/deep/x"), b"x", sync=True)
    fsync_path(ffs.path("wal/deep"))
    fsync_path(ffs.path("wal"))  # but not the root: wal itself was never made durable
    ffs.ctl("lose-unsynced")
    assert os.listdir(ffs.mnt) == []


def test_handles_from_before_the_power_loss_are_dead(ffs: Mount) -> None:
    p = ffs.path("f")
    write_file(p, b"durable", sync=True)
    fsync_path(str(ffs.mnt))
    fd = os.open(p, os.O_RDWR)
    os.write(fd, b"DURABLE")
    ffs.ctl("lose-unsynced")
    with pytest.raises(OSError) as e:
        os.pwrite(fd, b"zombie", 0)
    assert e.value.errno == errno.EIO
    os.close(fd)
    assert read(p) == b"durable"


def test_sync_all_makes_everything_durable(ffs: Mount) -> None:
    os.mkdir(ffs.path("d"))
    write_file(ffs.path("d/f"), b"abc")
    os.rename(ffs.path("d/f"), ffs.path("d/g"))
    out = ffs.ctl("sync-all")
    assert out["files_synced"] == 1 and out["dirs_synced"] == 2
    ffs.ctl("lose-unsynced")
    assert read(ffs.path("d/g")) == b"abc"


def test_metadata_durable_mode_loses_only_data(fuse_root: Path) -> None:
    m = Mount(fuse_root / "lazy").start("--metadata", "durable")
    try:
        write_file(m.path("a"), b"synced", sync=True)
        write_file(m.path("b"), b"unsynced")
        os.mkdir(m.path("d"))
        m.ctl("lose-unsynced")
        assert read(m.path("a")) == b"synced"
        assert read(m.path("b")) == b""
        assert os.path.isdir(m.path("d"))
    finally:
        m.stop()


WRITER = textwrap.dedent("""
    import os, sys
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    d = os.open(os.path.dirname(sys.argv[1]), os.O_RDONLY); os.fsync(d); os.close(d)
    n = 0
    while True:
        n += 1
        os.write(fd, b"%08d;" % n)
        if n % 7 == 0:
            os.fsync(fd)
            sys.stdout.write("%d\\n" % n); sys.stdout.flush()
""")


def test_kill_then_drop_keeps_exactly_the_fsynced_prefix(ffs: Mount) -> None:
    """The harness's power failure: SIGKILL the writer mid-stream, then lose-unsynced."""
    p = ffs.path("wal")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, p], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    last = 0
    for _ in range(40):
        last = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    for line in proc.stdout:  # fsyncs reported before the kill landed
        last = int(line)
    proc.wait(timeout=10)
    before = len(read(p)) // 9
    ffs.ctl("lose-unsynced")
    data = read(p)
    count = len(data) // 9
    # the writer may have finished one more fsync and died before reporting it
    assert count in (last, last + 7) and before >= count, (last, count, before)
    assert data == b"".join(b"%08d;" % i for i in range(1, count + 1))
    deadline = time.monotonic() + 5  # the dead writer's release reaches faultfs in the background
    while ffs.ctl("status")["open_handles"] and time.monotonic() < deadline:
        time.sleep(0.05)
    status = ffs.ctl("status")
    assert status["open_handles"] == 0 and status["unsynced_files"] == 0


def test_fsync_through_a_handle_after_an_unsynced_unlink(ffs: Mount) -> None:
    """The unlink was never made durable, so the file comes back, with what was fsynced
    through the handle that outlived its name."""
    write_file(ffs.path("seg"), b"old", sync=True)
    fsync_path(str(ffs.mnt))
    fd = os.open(ffs.path("seg"), os.O_RDWR)
    os.unlink(ffs.path("seg"))
    os.pwrite(fd, b"new", 0)
    os.fsync(fd)
    os.pwrite(fd, b"!", 3)  # after the fsync: lost
    os.close(fd)
    ffs.ctl("lose-unsynced")
    assert read(ffs.path("seg")) == b"new"


def test_power_loss_in_the_middle_of_concurrent_writers(ffs: Mount) -> None:
    """Writers keep appending and fsyncing while the power fails: each file is left with a
    prefix of its records at least as long as its last fsync that returned before, and its
    handles are dead afterwards."""
    import threading

    for w in range(4):
        write_file(ffs.path(f"f{w}"), b"", sync=True)
    fsync_path(str(ffs.mnt))
    synced = [0] * 4
    errors: list[int] = []
    lost = threading.Event()

    def writer(w: int) -> None:
        fd = os.open(ffs.path(f"f{w}"), os.O_WRONLY | os.O_APPEND)
        n = 0
        try:
            while True:
                n += 1
                os.write(fd, b"%07d;" % n)
                if n % 3 == 0:
                    os.fsync(fd)
                    if not lost.is_set():
                        synced[w] = n
        except OSError as e:
            errors.append(e.errno or 0)
        finally:
            os.close(fd)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    before = list(synced)
    ffs.ctl("lose-unsynced")
    lost.set()
    for t in threads:
        t.join(timeout=10)
    assert errors == [errno.EIO] * 4
    for w in range(4):
        data = read(ffs.path(f"f{w}"))
        count = len(data) // 8
        assert data == b"".join(b"%07d;" % i for i in range(1, count + 1))
        assert count % 3 == 0 and count >= before[w] > 0, (w, count, before[w])


def test_open_with_o_trunc_of_a_durable_file_is_undone(ffs: Mount) -> None:
    write_file(ffs.path("conf"), b"durable config", sync=True)
    fsync_path(str(ffs.mnt))
    write_file(ffs.path("conf"), b"half-")  # O_TRUNC, rewrite, no fsync
    assert read(ffs.path("conf")) == b"half-"
    ffs.ctl("lose-unsynced")
    assert read(ffs.path("conf")) == b"durable config"
