"""The node image of the docker provider, built locally: nothing can be pulled here.

The image is a root file system assembled from the host itself: the controller's own Python
3.11 (interpreter, standard library, extension modules) and the few tools a node host needs
(a shell, coreutils, tar and gzip for the code archive, iptables for partitions), each with
the shared libraries `ldd` says it loads. Files keep their host paths, so the interpreter
finds its standard library exactly as on the host. The project's code is not baked in: the
raftkv adapter uploads it to each container, as it does to an SSH host.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.protocols import HarnessError

log = logging.getLogger(__name__)

#: Commands a node host runs: DockerRemote's scripts, the raftkv adapter, partitions.
TOOLS = ("sh", "cat", "mkdir", "rm", "mv", "tail", "dirname", "sleep", "ls", "tar", "gzip", "iptables", "env",
         "timeout", "mktemp", "stat", "id")
#: Standard-library parts a node never imports; left out to keep the image (and each
#: container's full copy on the vfs storage driver) small.
STDLIB_SKIP = frozenset({"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
                         "pydoc_data", "site-packages", "dist-packages", "__pycache__"})
#: Extension modules a node never loads (Tk would drag in X11 and Tcl libraries).
STDLIB_SKIP_FILES = ("_tkinter", "_testcapi", "_testbuffer", "_testinternalcapi", "_testmultiphase",
                     "_ctypes_test", "xxlimited", "xxsubtype")
#: Directories whose whole content is needed: iptables loads its extensions from here.
XTABLES_DIRS = ("/usr/lib/x86_64-linux-gnu/xtables", "/usr/lib/aarch64-linux-gnu/xtables", "/usr/lib/xtables")
_LDD_PATH = re.compile(r"(/\S+)")


@dataclass
class Rootfs:
    """The files of the image (host path -> path in the image) and its extra symlinks."""

    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    def add(self, host_path: str) -> None:
        """Add a file under its host path, parent dirs resolved (merged /usr: /lib -> usr/lib)."""
        p = Path(host_path)
        self.files.setdefault(str(Path(os.path.realpath(p.parent)) / p.name), str(p))


def python_layout(python: str) -> tuple[str, str]:
    """(interpreter, stdlib dir) of `python`, asked of the interpreter itself."""
    probe = "import json, os, sys, sysconfig; print(json.dumps([os.path.realpath(sys.executable), sysconfig.get_path('stdlib'), sys.version_info[:2] == (3, 11)]))"
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise HarnessError(f"docker image: cannot run the host Python {python!r}: {e}") from None
    exe, stdlib, is_311 = json.loads(out)
    if not is_311:
        raise HarnessError(f"docker image: {python} is not Python 3.11 (nodes need 3.11)")
    return str(exe), str(stdlib)


def _stdlib_files(stdlib: str) -> Iterator[str]:
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = [d for d in dirs if d not in STDLIB_SKIP and not d.startswith("config-")]
        for name in files:
            if not name.startswith(STDLIB_SKIP_FILES):
                yield os.path.join(root, name)


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _libraries(paths: Iterable[str]) -> set[str]:
    """The shared libraries (and the loader) the ELF files among `paths` need, per ldd."""
    elves = [p for p in paths if _is_elf(p)]
    found: set[str] = set()
    for start in range(0, len(elves), 200):  # bounded argv per ldd call
        res = subprocess.run(["ldd", *elves[start:start + 200]], capture_output=True, text=True,
                             timeout=60, check=False)
        for line in res.stdout.splitlines():
            if line.endswith(":") or "not a dynamic executable" in line:
                continue
            m = _LDD_PATH.search(line.split("=>", 1)[-1])
            if m and os.path.exists(m.group(1)):
                found.add(m.group(1))
    return found


#: Loaded by glibc with dlopen, so ldd does not list it: the unwinder pthread_exit needs (a
#: Python daemon thread that wakes during interpreter shutdown exits through it; without it
#: glibc aborts the process).
DLOPENED_BY_LIBC = ("libgcc_s.so.1",)


def _dlopened_by_libc(libs: Iterable[str]) -> set[str]:
    """The DLOPENED_BY_LIBC libraries found next to the libc among `libs`."""
    found = set()
    for lib in libs:
        if os.path.basename(lib).startswith("libc.so"):
            for name in DLOPENED_BY_LIBC:
                cand = os.path.join(os.path.dirname(lib), name)
                if os.path.exists(cand):
                    found.add(cand)
    return found


def collect_rootfs(python: str, extra: Sequence[str] = ()) -> Rootfs:
    """Everything the image needs, from the host; `extra` files (libfaketime) under their paths."""
    if shutil.which("ldd") is None:
        raise HarnessError("docker image: ldd is missing on the controller (Debian package libc-bin)")
    fs = Rootfs()
    exe, stdlib = python_layout(python)
    # Commands go to /usr/bin under their own names (multi-call iptables dispatches on it).
    tools: dict[str, str] = {}
    for tool in TOOLS:
        where = shutil.which(tool)
        if where is None:
            raise HarnessError(f"docker image: {tool} is missing on the controller (needed in the node image)")
        tools[f"/usr/bin/{tool}"] = os.path.realpath(where)
    own = [exe, *_stdlib_files(stdlib), *extra]
    for d in XTABLES_DIRS:
        if os.path.isdir(d):
            own += [str(p) for p in Path(d).iterdir() if p.is_file()]
    # Libraries twice: extension modules' libraries may pull in further ones.
    libs = _libraries([*own, *tools.values()])
    libs |= _libraries(libs)
    libs |= _dlopened_by_libc(libs)
    for path in [*own, *sorted(libs)]:
        fs.add(path)
    fs.files.update(tools)
    fs.links["/usr/bin/python3"] = exe
    fs.links["/usr/bin/python3.11"] = exe
    for top in ("/bin", "/sbin", "/lib", "/lib64"):
        if os.path.islink(top):
            fs.links[top] = os.readlink(top)
    return fs


def write_rootfs_tar(fs: Rootfs, dest: Path) -> Path:
    """A tar of the image's root: files, symlinks, and the dirs a container expects."""
    def add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
        info = tarfile.TarInfo(name.lstrip("/"))
        info.type, info.mode = tarfile.DIRTYPE, mode
        tar.addfile(info)

    with tarfile.open(dest, "w") as tar:
        for d, mode in (("/tmp", 0o1777), ("/run", 0o755), ("/etc", 0o755), ("/root", 0o700),
                        ("/proc", 0o555), ("/sys", 0o555), ("/dev", 0o755), ("/usr/bin", 0o755)):
            add_dir(tar, d, mode)
        parents = {str(q) for f in fs.files for q in Path(f).parents if str(q) != "/"}
        for d in sorted(parents - {"/tmp", "/run", "/etc", "/root", "/usr/bin"}):
            add_dir(tar, d)
        for name, text in (("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("/etc/group", "root:x:0:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for image_path, host_path in sorted(fs.files.items()):
            # Regular file contents under the image path (symlinks on the host dereferenced).
            info = tar.gettarinfo(os.path.realpath(host_path), arcname=image_path.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(os.path.realpath(host_path), "rb") as f:
                tar.addfile(info, f)
        for link, target in sorted(fs.links.items()):
            info = tarfile.TarInfo(link.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return dest


def default_python() -> str:
    """The controller's own interpreter: the project runs on it, so it is 3.11."""
    return os.path.realpath(sys.executable)
