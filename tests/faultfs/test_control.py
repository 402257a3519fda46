"""The control socket over a layer, without FUSE (no root needed)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultfs.control import ControlError, ControlServer, check_socket_path, request
from faultfs.layer import Layer


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Layer, Path]]:
    backing = tmp_path / "backing"
    backing.mkdir()
    layer = Layer(backing)
    sock = tmp_path / "ctl.sock"
    server = ControlServer(layer, sock)
    server.start()
    try:
        yield layer, sock
    finally:
        server.close()
        layer.close()


def test_commands(served: tuple[Layer, Path]) -> None:
    layer, sock = served
    ids = (os.geteuid(), os.getegid())
    fh = layer.create("/f", 0o644, os.O_WRONLY, *ids)
    layer.write(fh, b"unsynced", 0)
    layer.release(fh)
    st = request(sock, "status")
    assert st["ok"] and st["unsynced_files"] == 1 and st["unsynced_bytes"] == 8
    out = request(sock, "lose-unsynced")
    assert out["ok"] and out["paths_lost"] == ["f"] and out["generation"] == 2
    assert request(sock, "disk-full on") == {"ok": True, "disk_full": True}
    with pytest.raises(OSError) as e:
        layer.mkdir("/d", 0o755, *ids)
    assert e.value.errno == 28  # ENOSPC
    assert request(sock, "disk-full off")["disk_full"] is False
    assert request(sock, "sync-all") == {"ok": True, "files_synced": 0, "dirs_synced": 0}


@pytest.mark.parametrize("line,error", [
    ("", "unknown command ''"),
    ("lose-unsynced now", "unknown command 'lose-unsynced now'"),
    ("disk-full", "unknown command 'disk-full'"),
    ("__import__('os')", "unknown command"),
])
def test_bad_commands_are_one_line_errors(served: tuple[Layer, Path], line: str, error: str) -> None:
    reply = request(served[1], line)
    assert reply["ok"] is False and error in reply["error"] and "\n" not in reply["error"]


def test_failed_rebuild_marks_the_layer_broken(served: tuple[Layer, Path]) -> None:
    layer, sock = served
    (layer.backing / ".faultfs" / "old").mkdir()  # as if a rebuild were cut short
    reply = request(sock, "lose-unsynced")
    assert reply["ok"] is False and "lose-unsynced" in reply["error"]
    with pytest.raises(OSError) as e:
        layer.getattr("/", None)
    assert "rebuild failed midway" in str(e.value)


def test_socket_is_private_and_checked(served: tuple[Layer, Path], tmp_path: Path) -> None:
    _, sock = served
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    with pytest.raises(ControlError, match="another faultfs is serving"):
        check_socket_path(sock)
    (tmp_path / "plain").write_text("")
    with pytest.raises(ControlError, match="not a socket"):
        check_socket_path(tmp_path / "plain")
    with pytest.raises(ControlError, match="its directory does not exist"):
        check_socket_path(tmp_path / "nope" / "s")
    with pytest.raises(ControlError, match="no faultfs answers"):
        request(tmp_path / "none.sock", "status")
