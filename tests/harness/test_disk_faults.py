"""The disk faults (lose-unsynced, corrupt, disk-full) against test doubles: what each does to
the nodes and their files, what the history records, the minority rule of corruption, the
final heal, and the one-line refusals where a fault cannot be made real."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from checkers.rundata import StoredRun
from checkers.rundata import read_records as read_history
from checkers.safety.checker import altered_disks, altered_in
from faultfs.alter import AlterError, alter_file, data_end
from harness.disk import hostfs
from harness.nemesis.core import Nemesis
from harness.nemesis.schedule import FaultEvent
from harness.protocols import DataDirFaults, DataDirs
from harness.run.config import ConfigError, validate
from harness.run.history import HistoryWriter

NODES = ["n1", "n2", "n3"]


class FakeDisks:
    """DataDirFaults over plain directories: control commands are recorded (lose-unsynced
    answers like faultfs), alterations are real (hostfs.alter_file)."""

    name = "fake"
    supports_clock = False

    def __init__(self, root: Path, nodes: Sequence[str], db: FakeDB) -> None:
        self.root, self.db = root, db
        self.commands: list[tuple[str, str, frozenset[str]]] = []  # (node, command, running then)
        for n in nodes:
            (root / n).mkdir(parents=True)

    def heal(self) -> None:  # the network (partition family's heal): nothing to undo here
        pass

    def disk_refusal(self) -> str | None:
        return None

    def disk_root(self, node: str) -> str | None:
        return str(self.root / node)

    def disk_control(self, node: str, command: str) -> dict[str, Any]:
        self.commands.append((node, command, frozenset(self.db.running)))
        if command == "lose-unsynced":
            return {"ok": True, "bytes_lost": 7, "files_rolled_back": 1, "paths_lost": ["wal/x"],
                    "paths_lost_count": 1, "paths_restored_count": 0}
        return {"ok": True}

    def disk_files(self, node: str, under: str) -> list[tuple[str, int]]:
        top = Path(under)
        return sorted((str(p.relative_to(top)), p.stat().st_size) for p in top.rglob("*") if p.is_file())

    def disk_data_end(self, node: str, path: str) -> int:
        return data_end(Path(path))

    def disk_alter(self, node: str, path: str, flips: Sequence[tuple[int, int]] = (),
                   truncate: int | None = None) -> dict[str, Any]:
        return alter_file(Path(path), flips, truncate)


class FakeDB:
    name = "fake"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running = set(NODES)
        self.kill_times: dict[str, float] = {}
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def kill(self, node: str) -> None:
        time.sleep(0.05)  # a real kill waits for the process to be gone
        with self._lock:
            self.running.discard(node)
            self.kill_times[node] = time.monotonic()
            self.log.append(("kill", node))

    def start(self, node: str) -> None:
        with self._lock:
            self.running.add(node)
            self.log.append(("start", node))

    def leader(self) -> str | None:
        return "n1"

    def data_dir(self, node: str) -> str:
        return str(self.root / node / "data")

    def data_files(self) -> Mapping[str, str]:
        return {"wal": "wal/wal-*.log", "snapshot": "snap/snap-*.json"}


@pytest.fixture
def cluster(tmp_path: Path) -> tuple[Nemesis, FakeDB, FakeDisks, HistoryWriter]:
    db = FakeDB(tmp_path / "disks")
    disks = FakeDisks(tmp_path / "disks", NODES, db)
    for n in NODES:
        wal = Path(db.data_dir(n)) / "wal"
        wal.mkdir(parents=True)
        (wal / "wal-0000000000000001.log").write_bytes(bytes(range(200)))
    hist = HistoryWriter(tmp_path / "h.jsonl")
    nem = Nemesis(db, disks, NODES, hist, opts={"corrupt_bytes": 3})  # type: ignore[arg-type]
    return nem, db, disks, hist


def ev(fault: str, kind: str, seed: int = 1) -> FaultEvent:
    return FaultEvent(0.0, fault, kind, 0.1, seed)


def test_doubles_have_the_abilities(cluster: Any) -> None:
    _nem, db, disks, _hist = cluster
    assert isinstance(disks, DataDirFaults) and isinstance(db, DataDirs)


def test_coordinated_power_loss_kills_all_before_dropping_anything(cluster: Any) -> None:
    nem, db, disks, hist = cluster
    nem.start(ev("lose-unsynced", "all"))
    assert db.running == set()
    assert max(db.kill_times.values()) - min(db.kill_times.values()) < 0.04  # one instant
    assert [(n, c) for n, c, _ in disks.commands] == [(n, "lose-unsynced") for n in NODES]
    assert all(running == frozenset() for _, _, running in disks.commands)  # all down first
    nem.stop()
    assert db.running == set(NODES)
    hist.close()
    ops = read_history(hist.path)
    assert [o["f"] for o in ops] == ["start-lose-unsynced", "stop-lose-unsynced"]
    value = ops[0]["value"]
    assert value["kind"] == "all" and value["nodes"] == NODES
    assert value["lost"]["n2"]["bytes_lost"] == 7 and value["lost"]["n2"]["paths_lost"] == ["wal/x"]
    assert ops[1]["value"] == {"kind": "all", "restarted": NODES}


def test_power_loss_of_one_node_and_the_final_heal(cluster: Any) -> None:
    nem, db, disks, hist = cluster
    nem.start(ev("lose-unsynced", "one"))
    assert len(db.running) == 2
    nem.heal_all()  # the stop, then every family's heal
    assert db.running == set(NODES)


def test_bitflips_are_recorded_byte_by_byte(cluster: Any) -> None:
    nem, db, disks, hist = cluster
    nem.start(ev("corrupt", "bitflip"))
    value = read_history(hist.path)[-1]["value"]
    node = value["node"]
    assert node not in db.running and value["nodes"] == [node]
    assert value["file"] == "wal/wal-0000000000000001.log" and value["file_kind"] == "wal"
    assert value["size"] == 200 and len(value["changes"]) == 3
    data = (Path(db.data_dir(node)) / value["file"]).read_bytes()
    for c in value["changes"]:
        assert int(c["before"], 16) == c["offset"]  # the file held its offsets as bytes
        assert data[c["offset"]] == int(c["after"], 16)
        assert bin(int(c["before"], 16) ^ int(c["after"], 16)).count("1") == 1  # one bit
    nem.stop()
    assert node in db.running


def test_truncation(cluster: Any) -> None:
    nem, db, disks, hist = cluster
    nem.start(ev("corrupt", "truncate", seed=5))
    nem.stop()
    hist.close()
    value = read_history(hist.path)[0]["value"]
    path = Path(db.data_dir(value["node"])) / value["file"]
    assert path.stat().st_size == value["truncated_to"] < 200
    assert value["bytes_removed"] == 200 - value["truncated_to"]


@pytest.mark.parametrize("nodes", [3, 5])
def test_corruption_only_ever_hits_a_minority(tmp_path: Path, nodes: int) -> None:
    names = [f"n{i}" for i in range(1, nodes + 1)]
    db = FakeDB(tmp_path)
    db.running = set(names)
    disks = FakeDisks(tmp_path, names, db)
    for n in names:
        (Path(db.data_dir(n)) / "snap").mkdir(parents=True)
        (Path(db.data_dir(n)) / "snap" / "snap-1.json").write_bytes(b"x" * 50)
    hist = HistoryWriter(tmp_path / "h.jsonl")
    nem = Nemesis(db, disks, names, hist)  # type: ignore[arg-type]
    for seed in range(40):
        a = nem.start(ev("corrupt", "bitflip", seed))
        nem.stop(a)
    hist.close()
    hit = {o["value"]["node"] for o in read_history(hist.path) if o["f"] == "start-corrupt"}
    assert len(hit) == (nodes - 1) // 2
    assert nem.state.corrupted == hit


def test_no_file_to_corrupt_is_an_error_and_the_node_comes_back(cluster: Any) -> None:
    nem, db, disks, hist = cluster
    nem.state.opts = {"corrupt_files": ["snapshot"]}  # no snapshot yet
    nem.start(ev("corrupt", "bitflip"))
    nem.stop()
    hist.close()
    start, stop = read_history(hist.path)
    assert "no non-empty snapshot file" in start["error"]
    assert db.running == set(NODES) and stop["value"]["restarted"]
    assert not nem.state.corrupted


def test_disk_full_clears_and_starts_a_node_that_crashed(cluster: Any) -> None:
    nem, db, disks, hist = cluster
    a = nem.start(ev("disk-full", "all"))
    assert [c for _, c, _ in disks.commands] == ["disk-full on"] * 3
    db.running.discard("n2")  # crashed on ENOSPC
    nem.stop(a)
    assert [c for _, c, _ in disks.commands][3:] == ["disk-full off"] * 3
    assert db.running == set(NODES) and not nem.state.disk_full
    nem.start(ev("disk-full", "one"))
    nem.heal_all()
    assert not nem.state.disk_full and disks.commands[-1][1] == "disk-full off"
    hist.close()
    heal = read_history(hist.path)[-1]
    assert heal["f"] == "heal" and "error" not in heal


def test_alter_file_flips_and_cuts(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"\x00\x01\x02\x03")
    out = alter_file(f, flips=[(1, 0x80), (3, 0x01)])
    assert f.read_bytes() == b"\x00\x81\x02\x02"
    assert out == {"size": 4, "changes": [{"offset": 1, "before": "01", "after": "81"},
                                          {"offset": 3, "before": "03", "after": "02"}]}
    assert alter_file(f, truncate=1) == {"size": 4, "truncated_to": 1, "bytes_removed": 3}
    with pytest.raises(AlterError, match="no byte 5 to flip"):
        alter_file(f, flips=[(5, 1)])
    assert f.read_bytes() == b"\x00"  # a refused change changes nothing
    f.write_bytes(b"ab\x00c" + bytes(3 << 20))
    assert data_end(f, chunk=4096) == 4 and data_end(tmp_path / "f") == 4
    f.write_bytes(bytes(10))
    assert data_end(f) == 0


def test_alter_from_the_command_line(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    f = tmp_path / "f"
    f.write_bytes(b"abc")
    p = subprocess.run([sys.executable, "-m", "faultfs", "alter", str(f), "--flip", "0:0x20"],
                       capture_output=True, text=True, cwd=hostfs.REPO, timeout=30)
    assert p.returncode == 0 and json.loads(p.stdout)["changes"][0]["after"] == "41"
    assert f.read_bytes() == b"Abc"
    p = subprocess.run([sys.executable, "-m", "faultfs", "alter", str(f), "--flip", "x"],
                       capture_output=True, text=True, cwd=hostfs.REPO, timeout=30)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "expected OFFSET:MASK" in p.stderr


def test_corruption_stays_within_the_data_of_a_preallocated_file(cluster: Any) -> None:
    nem, db, disks, hist = cluster
    for n in NODES:  # 100 bytes written, then preallocated zeros
        (Path(db.data_dir(n)) / "wal" / "wal-0000000000000001.log").write_bytes(b"\x01" * 100 + bytes(5000))
    for seed in range(20):
        nem.stop(nem.start(ev("corrupt", "bitflip", seed)))
        nem.stop(nem.start(ev("corrupt", "truncate", seed)))
    hist.close()
    values = [o["value"] for o in read_history(hist.path) if o["f"] == "start-corrupt" and "error" not in o]
    assert len(values) >= 5 and all(v["data_end"] <= 100 for v in values)
    assert all(c["offset"] < 100 for v in values for c in v.get("changes", []))
    assert all(v["truncated_to"] < 100 for v in values if v["kind"] == "truncate")


def test_the_safety_checker_places_corruptions_on_the_wall_clock() -> None:
    history = [
        {"process": "nemesis", "type": "info", "f": "start-corrupt", "time": 2_000_000_000,
         "value": {"kind": "bitflip", "node": "n2"}},
        {"process": "nemesis", "type": "info", "f": "start-corrupt", "time": 3_000_000_000,
         "value": {"kind": "bitflip"}, "error": "no file"},
        {"process": "nemesis", "type": "info", "f": "start-lose-unsynced", "time": 4_000_000_000,
         "value": {"kind": "one", "nodes": ["n1"]}},
    ]
    assert altered_disks(history, 100.0) == {"n2": [102.0]}
    run = StoredRun.of_records(history, Path("."), {"nemesis": {"faults": ["corrupt"]}, "start_time": 100.0})
    assert altered_in(run) == {"n2": [102.0]}
    assert altered_in(StoredRun.of_records(history, Path("."), {"nemesis": {"faults": ["kill"]}})) == {}


# ---- refusals when the config is validated ------------------------------------------------


def test_disk_faults_need_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostfs.os, "geteuid", lambda: 1000)
    for fault in ("lose-unsynced", "corrupt", "disk-full"):
        with pytest.raises(ConfigError) as e:
            validate({"nemesis": {"faults": [fault]}}, "x.yaml")
        msg = str(e.value)
        assert "\n" not in msg and f"{fault} cannot be made real" in msg
        assert "need root to mount faultfs" in msg and "uid 1000" in msg


def test_disk_faults_need_fuse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostfs.os, "geteuid", lambda: 0)
    monkeypatch.setattr(hostfs.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="fusermount3"):
        validate({"nemesis": {"faults": ["lose-unsynced"]}}, "x.yaml")


def test_corrupt_files_must_be_kinds_the_db_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostfs, "refusal", lambda: None)
    with pytest.raises(ConfigError, match=r"db raftkv has no 'blk' files \(it has: snapshot, wal\)"):
        validate({"nemesis": {"faults": ["corrupt"], "corrupt_files": ["blk"]}}, "x.yaml")
    with pytest.raises(ConfigError, match="etcd has no 'blk'"):
        validate({"db": "etcd", "nemesis": {"faults": ["corrupt"], "corrupt_files": ["blk"]}}, "x.yaml")
    ok = validate({"nemesis": {"faults": ["corrupt"], "corrupt_files": ["wal"]}}, "x.yaml")
    assert ok["nemesis"]["corrupt_files"] == ["wal"]


def test_providers_without_the_ability_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="the docker provider lacks DataDirFaults"):
        validate({"provider": "docker", "nemesis": {"faults": ["disk-full"]}}, "x.yaml")


def test_corruption_needs_three_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostfs, "refusal", lambda: None)
    with pytest.raises(ConfigError, match="needs at least 3 nodes"):
        validate({"nodes": 2, "nemesis": {"faults": ["corrupt"]}}, "x.yaml")
