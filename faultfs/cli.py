"""`python -m faultfs`: mount a faultfs, drive it, unmount it.

    python -m faultfs mount MOUNTPOINT --backing DIR --control SOCKET [--metadata posix|durable]
                            [--log FILE] [--debug]
    python -m faultfs ctl SOCKET COMMAND [ARG] [--wait SECONDS]
    python -m faultfs umount MOUNTPOINT
    python -m faultfs alter FILE [--flip OFFSET:MASK]... [--truncate LENGTH] | --data-end

`mount` serves in the foreground until unmounted or signalled (SIGTERM, SIGINT: exit 0); the mount
is ready once the control socket answers (`ctl SOCKET status --wait 10`). If the process
dies, even by SIGKILL, fusermount3 (auto_unmount) takes the mount down. `umount` detaches a
mount (also one whose faultfs hangs) and is a no-op for a path that is not mounted. `alter` changes a file durably (bit flips or a cut, then fsync; faultfs.alter) and prints
what changed as JSON. Errors are one line on stderr, exit status 1.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from faultfs.control import COMMANDS, ControlError, ControlServer, check_socket_path, request

log = logging.getLogger("faultfs")

MNT_DETACH = 2
LOOP_ENDED = "8"  # fuse_main_real's result when its loop ends, also by SIGTERM / SIGINT


class UsageError(Exception):
    """Bad input or an unusable machine: reported in one line."""


def _canonical(path: Path) -> str:
    """The absolute path without touching path itself: a stat of a mount point whose FUSE
    server is stopped would hang."""
    p = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))


def _mount_points() -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount this process sees, from
    /proc/self/mountinfo (which escapes space, tab, newline and backslash in octal)."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            # optional fields follow the sixth, up to a lone "-"; the type comes after it
            fstype = fields[fields.index("-", 6) + 1] if "-" in fields[6:-1] else ""
            out.append((point.replace("\\134", "\\"), fstype))
    return out


def mounted(path: Path) -> bool:
    """Whether path is a mount point, also when its FUSE server is gone or hung (stat fails
    with ENOTCONN, or never returns)."""
    target = _canonical(path)
    return any(point == target for point, _ in _mount_points())


def faultfs_mounts_under(root: Path) -> list[Path]:
    """The faultfs mount points at or below `root` (without touching them: a dead server's
    mount would hang a stat)."""
    top = _canonical(root)
    return [Path(point) for point, fstype in _mount_points()
            if fstype == "fuse.faultfs" and (point == top or point.startswith(top.rstrip("/") + "/"))]


def _nested(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def _check_mount_args(mnt: Path, backing: Path) -> None:
    if os.geteuid() != 0:
        raise UsageError(f"needs root to mount a FUSE file system (running as uid {os.geteuid()})")
    if not Path("/dev/fuse").exists():
        raise UsageError("/dev/fuse is missing: no FUSE on this host (or not passed to the container)")
    if shutil.which("fusermount3") is None:
        raise UsageError("fusermount3 not found: install Debian's fuse3")
    if mounted(mnt):
        raise UsageError(f"{mnt}: already a mount point")
    if not backing.is_dir():
        raise UsageError(f"--backing {backing}: not a directory")
    if not mnt.is_dir():
        raise UsageError(f"{mnt}: mount point is not a directory")
    if _nested(mnt.resolve(), backing.resolve()):
        raise UsageError(f"{mnt} and --backing {backing} must not contain one another")


def cmd_mount(args: argparse.Namespace) -> int:
    mnt, backing, control = Path(args.mountpoint), Path(args.backing), Path(args.control)
    _check_mount_args(mnt, backing)
    try:
        check_socket_path(control)
        from faultfs import fs
    except ControlError as e:
        raise UsageError(str(e)) from None
    except (OSError, ImportError) as e:  # mfusepy raises when it cannot load libfuse
        raise UsageError(f"cannot load libfuse3 (install Debian's fuse3): {e}") from None
    if fs.mfusepy.fuse_version_major != 3:
        raise UsageError(f"needs libfuse 3, found {fs.mfusepy.fuse_version_major}")
    from faultfs.layer import Layer

    try:
        layer = Layer(backing, args.metadata)
    except (RuntimeError, OSError) as e:
        raise UsageError(str(e)) from None
    server = ControlServer(layer, control)
    os.umask(0)  # modes come from the kernel with the caller's umask already applied
    ops = fs.FaultFS(layer, on_init=server.start, on_destroy=server.close)
    log.info("mounting %s over %s (metadata=%s, control %s)", mnt, backing, args.metadata, control)
    try:
        fs.mount(ops, str(mnt.resolve()), debug=args.debug)
    except RuntimeError as e:
        if not (ops.served and str(e) == LOOP_ENDED):
            raise UsageError(f"mounting {mnt} failed (libfuse: {e}; see its message above)") from None
    finally:
        server.close()
        layer.close()
    log.info("unmounted %s", mnt)
    return 0


def cmd_ctl(args: argparse.Namespace) -> int:
    try:
        reply = request(Path(args.socket), " ".join(args.command), wait=args.wait)
    except ControlError as e:
        raise UsageError(str(e)) from None
    print(json.dumps(reply))
    return 0 if reply.get("ok") else 1


def unmount(mnt: Path) -> None:
    """Detach a faultfs mount; nothing to do if it is not mounted. As root this is
    umount2(MNT_DETACH), which does not wait for the server (a hung or stopped faultfs
    cannot block it; a live one sees its connection end and exits); otherwise
    `fusermount3 -u -z`. A clean stop is SIGTERM to the faultfs process."""
    if not mounted(mnt):
        return
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(os.fsencode(_canonical(mnt)), MNT_DETACH) != 0 and mounted(mnt):
            raise UsageError(f"{mnt}: unmount failed: {os.strerror(ctypes.get_errno())}")
        return
    try:
        r = subprocess.run(["fusermount3", "-u", "-z", "-q", "--", str(mnt)],
                           capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise UsageError(f"{mnt}: fusermount3 -u -z did not finish in 30 s") from None
    if r.returncode != 0 and mounted(mnt):
        raise UsageError(f"{mnt}: unmount failed: {r.stderr.strip() or r.returncode}")


def cmd_umount(args: argparse.Namespace) -> int:
    unmount(Path(args.mountpoint))
    return 0


def cmd_alter(args: argparse.Namespace) -> int:
    from faultfs.alter import AlterError, alter_file, data_end, parse_flip

    try:
        if args.data_end:
            print(json.dumps({"size": Path(args.file).stat().st_size, "data_end": data_end(Path(args.file))}))
            return 0
        flips = [parse_flip(f) for f in args.flip]
        print(json.dumps(alter_file(Path(args.file), flips, args.truncate)))
    except (AlterError, OSError) as e:
        raise UsageError(str(e)) from None
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m faultfs",
                                description="Mount a faultfs over a backing directory, drive it, unmount it.")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mount", help="serve a faultfs over a backing directory")
    m.add_argument("mountpoint")
    m.add_argument("--backing", required=True, help="directory holding the files")
    m.add_argument("--control", required=True, help="unix socket path for control commands")
    m.add_argument("--metadata", choices=("posix", "durable"), default="posix",
                   help="posix: creates, renames, unlinks are durable at the directory's fsync "
                        "(default); durable: at once, only file data is volatile (LazyFS)")
    m.add_argument("--log", help="log file (default: stderr)")
    m.add_argument("--debug", action="store_true", help="log every FUSE request (slow)")
    m.set_defaults(func=cmd_mount)
    c = sub.add_parser("ctl", help=f"send a control command: {', '.join(COMMANDS)}")
    c.add_argument("socket")
    c.add_argument("command", nargs="+")
    c.add_argument("--wait", type=float, default=0.0,
                   help="retry connecting this many seconds (while the mount starts)")
    c.set_defaults(func=cmd_ctl)
    u = sub.add_parser("umount", help="detach a mount (lazily); no-op if not mounted")
    u.add_argument("mountpoint")
    u.set_defaults(func=cmd_umount)
    a = sub.add_parser("alter", help="flip bits in or cut a file, durably (fsync); prints what changed")
    a.add_argument("file")
    a.add_argument("--flip", action="append", default=[], metavar="OFFSET:MASK",
                   help="XOR MASK into the byte at OFFSET (repeatable)")
    a.add_argument("--truncate", type=int, metavar="LENGTH", help="cut the file to LENGTH bytes")
    a.add_argument("--data-end", action="store_true",
                   help="change nothing: print the size and where the data ends before a zero-filled tail")
    a.set_defaults(func=cmd_alter)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        filename=getattr(args, "log", None),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        rc: int = args.func(args)
        return rc
    except UsageError as e:
        print(f"faultfs: {e}", file=sys.stderr)
        return 1
