"""Private directories on hosts: fresh, owner-only, and refused under a base another user
could tamper with (harness.remotes.private_dir, through a LocalRemote as the host)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness.protocols import RemoteError
from harness.remotes.local import LocalRemote
from harness.remotes.private_dir import Component, make_private_dir, unsafe_component
from tests.support.env import require_root

ME = os.getuid()
NOBODY = 65534


@pytest.mark.parametrize(
    ("chain", "why"),
    [
        ([(ME, 0o755, "/b"), (0, 0o755, "/")], None),
        ([(ME, 0o700, "/tmp/b"), (0, 0o1777, "/tmp"), (0, 0o755, "/")], None),  # sticky /tmp
        ([(0, 0o1777, "/tmp"), (0, 0o755, "/")], None),  # /tmp itself as the base
        ([(NOBODY, 0o755, "/tmp/b"), (0, 0o1777, "/tmp"), (0, 0o755, "/")], "/tmp/b is owned by uid 65534"),
        ([(ME, 0o777, "/b"), (0, 0o755, "/")], "/b is writable by other users (mode 777) and not sticky"),
        ([(ME, 0o775, "/b"), (0, 0o755, "/")], "/b is writable by other users (mode 775)"),
        ([(ME, 0o755, "/s/b"), (NOBODY, 0o755, "/s"), (0, 0o755, "/")], "/s is owned by uid 65534"),
        ([(ME, 0o755, "/s/b"), (0, 0o777, "/s"), (0, 0o755, "/")], "/s is writable by other users"),
    ],
)
def test_unsafe_component_table(chain: list[tuple[int, int, str]], why: str | None) -> None:
    got = unsafe_component([Component(p, u, m) for u, m, p in chain], ME if ME != NOBODY else 1000)
    assert (got is None) if why is None else (got is not None and why in got), got


def test_fresh_owner_only_and_distinct(tmp_path: Path) -> None:
    r = LocalRemote("n1")
    base = tmp_path / "base" / "deeper"  # made where missing
    a = make_private_dir(r, str(base), "faultline-raftkv-n1")
    b = make_private_dir(r, str(base), "faultline-raftkv-n1")
    assert a != b
    for d in (a, b):
        st = os.stat(d)
        assert Path(d).parent == base.resolve() and Path(d).name.startswith("faultline-raftkv-n1.")
        assert st.st_uid == ME and stat.S_IMODE(st.st_mode) == 0o700 and stat.S_ISDIR(st.st_mode)


def test_refuses_a_base_others_may_write(tmp_path: Path) -> None:
    r = LocalRemote("n1")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(RemoteError) as e:
        make_private_dir(r, str(shared / "faultline"), "x")
    assert "n1: refusing" in str(e.value) and f"{shared} is writable by other users" in str(e.value)
    assert list(shared.iterdir()) == []  # refused before anything was made there
    shared.chmod(0o1777)  # sticky, like /tmp: others cannot rename what we make
    assert make_private_dir(r, str(shared / "faultline"), "x").startswith(f"{shared}/faultline/x.")
    with pytest.raises(RemoteError, match="absolute path"):
        make_private_dir(r, "relative/dir", "x")


def test_refuses_a_base_another_user_made_first(tmp_path: Path) -> None:
    """The attack: a local user makes the base first (here under a sticky, world-writable dir,
    as under /tmp) and plants code there; nothing of ours goes in it."""
    require_root()
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    planted = sticky / "faultline-raftkv"
    (planted / "n1" / "code").mkdir(parents=True)
    (planted / "n1" / "code" / "sitecustomize.py").write_text("open('/tmp/pwned', 'w')\n")
    for p in (planted, planted / "n1", planted / "n1" / "code"):
        os.chown(p, NOBODY, NOBODY)
    with pytest.raises(RemoteError) as e:
        make_private_dir(LocalRemote("n1"), str(planted), "faultline-raftkv-n1")
    assert f"{planted} is owned by uid {NOBODY}" in str(e.value) and "\n" not in str(e.value)
    assert sorted(p.name for p in planted.iterdir()) == ["n1"]
