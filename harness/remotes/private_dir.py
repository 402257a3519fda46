"""A fresh private directory on a host, for files that root daemons run, read or write.

A fixed path under a shared directory (`/tmp/faultline-raftkv/n1/code`) lets any local user of
the host create it first and plant code there (a `sitecustomize.py` on a root daemon's
PYTHONPATH) or a symlink where a root daemon appends its log. So each run makes its own
directory: `mktemp -d` under a configurable base, which creates a new, unguessable name
exclusively, mode 0700. Before that, the base and every directory above it must be owned by
root or by the user making the directory, and writable by nobody else unless sticky (like
/tmp): otherwise another user could rename our directory away and put theirs in its place.
Afterwards the new directory's owner and mode are checked.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

from harness.protocols import Remote, RemoteError

#: `uid mode path` of a directory and of each one above it, after the caller's uid.
_CHAIN = ('id -u && d=$(cd -- "$d" && pwd -P) && while :; do printf "%s %s\\n" "$(stat -c "%u %a" -- "$d")" "$d"; '
          '[ "$d" = / ] && break; d=$(dirname -- "$d"); done')
#: The chain of the base's nearest existing ancestor: judged before anything is made there.
_EXISTING = 'd=$1; while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done; ' + _CHAIN
#: The base made where missing (by the caller, mode 755), then its chain: judged again, as
#: another user could have made it in between under a sticky parent such as /tmp.
_BASE = 'umask 022 && mkdir -p -- "$1" && d=$1 && ' + _CHAIN
#: A new directory under the (real) base: its path, then `uid mode`.
_MAKE = 'd=$(mktemp -d -- "$1/$2.XXXXXXXXXX") && printf "%s\\n" "$d" && stat -c "%u %a" -- "$d"'


@dataclass(frozen=True)
class Component:
    path: str
    uid: int
    mode: int


def unsafe_component(components: list[Component], uid: int) -> str | None:
    """Why another user could swap what lies under the first component (the base), or None.
    `components`: the base first, then each parent up to /."""
    for c in components:
        if c.uid not in (0, uid):
            return f"{c.path} is owned by uid {c.uid} (neither root nor uid {uid})"
        if c.mode & (stat.S_IWGRP | stat.S_IWOTH) and not c.mode & stat.S_ISVTX:
            return f"{c.path} is writable by other users (mode {c.mode:o}) and not sticky"
    return None


def _components(lines: list[str]) -> list[Component]:
    out = []
    for line in lines:
        uid, mode, path = line.split(" ", 2)
        out.append(Component(path, int(uid), int(mode, 8)))
    return out


def _chain(remote: Remote, script: str, base: str, sudo: bool) -> tuple[int, list[Component]]:
    res = remote.run(["sh", "-c", script, "sh", base], sudo=sudo, check=False)
    try:
        if res.exit_code != 0:
            raise ValueError(res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.exit_code}")
        lines = res.stdout.splitlines()
        return int(lines[0]), _components(lines[1:])
    except (ValueError, IndexError) as e:
        raise RemoteError(f"{remote.host}: cannot inspect {base}: {e}") from None


def _judge(remote: Remote, base: str, uid: int, components: list[Component]) -> None:
    why = unsafe_component(components, uid)
    if why is not None:
        raise RemoteError(f"{remote.host}: refusing {base} for faultline's files: {why}; "
                          "another user could replace them (choose another base directory)")


def make_private_dir(remote: Remote, base: str, prefix: str, *, sudo: bool = False) -> str:
    """A new directory `<base>/<prefix>.XXXXXXXXXX` that only its owner can enter: the login
    user, or root with `sudo`. RemoteError (one line naming host and path) when the base is
    not safe or the directory is not what was asked for."""
    if not base.startswith("/"):
        raise RemoteError(f"{remote.host}: base directory must be an absolute path, got {base!r}")
    _judge(remote, base, *_chain(remote, _EXISTING, base, sudo))
    uid, components = _chain(remote, _BASE, base, sudo)
    _judge(remote, base, uid, components)
    real = components[0].path
    res = remote.run(["sh", "-c", _MAKE, "sh", real, prefix], sudo=sudo, check=False)
    lines = res.stdout.splitlines()
    if res.exit_code != 0 or len(lines) != 2:
        reason = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.exit_code}"
        raise RemoteError(f"{remote.host}: cannot make a directory in {real}: {reason}")
    path = lines[0]
    made = _components([f"{lines[1]} {path}"])[0]
    if made.uid != uid or made.mode & 0o077 or not path.startswith(f"{real.rstrip('/')}/{prefix}."):
        raise RemoteError(f"{remote.host}: {path} is not a fresh private directory "
                          f"(uid {made.uid}, mode {made.mode:o})")
    return path
