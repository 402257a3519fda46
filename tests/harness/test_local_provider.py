"""The local provider and the raftkv adapter on real processes: partition a minority away and
writes continue, heal, kill and restart the leader, nothing left behind (clocks: test_clock.py)."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from harness.db.raftkv import RaftkvDB
from harness.protocols import HarnessError, NodeAddresses, Remote
from harness.providers.local import LocalProvider
from harness.remotes.local import pid_alive
from harness.run.config import ConfigError, validate
from nodes.admin_client import AdminClient, AdminError

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[LocalProvider, RaftkvDB]]:
    test = validate({"nodes": 3, "nemesis": {"faults": []}, "raft": {"election_tick": 5}})
    provider = LocalProvider(tmp_path / "work", clock=False)
    db = RaftkvDB(test)
    pids: list[int] = []
    try:
        db.setup(provider, provider.setup(test["nodes"]), test)
        yield provider, db
    finally:
        for node in test["nodes"]:
            pidfile = tmp_path / "work" / node / "node.pid"
            if pidfile.exists():
                pids.append(int(pidfile.read_text()))
        db.teardown()
        provider.teardown()
        for pid in pids:  # belt and braces: nothing may outlive the test
            if pid_alive(pid):
                os.kill(pid, 9)


def write_ok(db: RaftkvDB, node: str, key: str, value: int, tries: int = 40) -> bool:
    for _ in range(tries):
        c = db.client({"workload_opts": {"timeout": 1.0}})
        c.open(node)
        try:
            if c.invoke({"f": "write", "key": key, "value": value})["type"] == "ok":
                return True
        finally:
            c.close()
        time.sleep(0.25)
    return False


def test_minority_partition_then_leader_kill(cluster: tuple[LocalProvider, RaftkvDB]) -> None:
    provider, db = cluster
    leader = db.wait_for_leader(10)
    assert write_ok(db, leader, "a", 1)
    minority = next(n for n in db.nodes if n != leader)
    majority = [n for n in db.nodes if n != minority]
    provider.partition({minority: set(majority), **{n: {minority} for n in majority}})
    assert provider.hub is not None and len(provider.hub.cut_links()) == 4
    # the majority side keeps taking writes
    assert write_ok(db, leader, "a", 2)
    # the isolated node cannot get a write committed (it forwards into the void or refuses)
    c = db.client({"workload_opts": {"timeout": 1.0}})
    c.open(minority)
    try:
        assert c.invoke({"f": "write", "key": "a", "value": 3})["type"] in ("fail", "info")
    finally:
        c.close()
    provider.heal()
    assert provider.hub.cut_links() == set()
    db.kill(leader)
    assert not db.is_running(leader)
    new_leader = db.wait_for_leader(15)
    assert new_leader != leader
    assert write_ok(db, new_leader, "a", 4)
    db.start(leader)
    assert db.is_running(leader)
    assert write_ok(db, leader, "a", 5)


def test_bad_bug_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="<config>: bugs: unknown raftkv bug 'no-such-bug'"):
        validate({"bugs": ["no-such-bug"], "nemesis": {"faults": []}})


class ArchiveHostsProvider:
    """Local processes treated like remote hosts (no `NodeDirs`): the adapter must upload and
    unpack the node code instead of using this source tree."""

    name = "archive-hosts"

    def __init__(self, work_dir: Path) -> None:
        self.local = LocalProvider(work_dir, clock=False)
        self.supports_clock = False
        self.clock_refusal = "not asked for"

    def setup(self, nodes: Sequence[str]) -> dict[str, Remote]:
        return self.local.setup(nodes)

    def addresses(self, node: str) -> NodeAddresses:
        return self.local.addresses(node)

    def peer_address(self, src: str, dst: str) -> tuple[str, int]:
        return self.local.peer_address(src, dst)

    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        self.local.partition(grudge)

    def heal(self) -> None:
        self.local.heal()

    def node_env(self, node: str) -> dict[str, str]:
        return {}

    def set_clock(self, node: str, offset_s: float, rate: float = 1.0) -> None:
        raise HarnessError("archive-hosts: no clocks")

    def teardown(self) -> None:
        self.local.teardown()


def test_nodes_run_from_uploaded_archive(tmp_path: Path) -> None:
    test = validate({"nodes": 3, "nemesis": {"faults": []},
                     "db_opts": {"python": sys.executable, "dir": str(tmp_path / "work")}})
    provider = ArchiveHostsProvider(tmp_path / "work")
    db = RaftkvDB(test)
    try:
        db.setup(provider, provider.setup(test["nodes"]), test)
        for node in test["nodes"]:
            # a private dir made for this run under db_opts.dir (harness.remotes.private_dir)
            home = Path(db.node_dir(node))
            assert home.parent == tmp_path / "work" and home.name.startswith(f"faultline-raftkv-{node}.")
            assert home.stat().st_mode & 0o077 == 0
            assert (home / "code" / "nodes" / "__main__.py").exists()
            assert db.argv(node)[0] == sys.executable
        assert write_ok(db, db.wait_for_leader(10), "z", 1)
        home = Path(db.node_dir("n1"))
        environ = Path(f"/proc/{int((home / 'node.pid').read_text())}/environ").read_bytes()
        assert f"PYTHONPATH={home / 'code'}".encode() in environ
    finally:
        db.teardown()
        provider.teardown()


def test_each_cluster_has_a_token_its_nodes_demand(cluster: tuple[LocalProvider, RaftkvDB]) -> None:
    provider, db = cluster
    db.wait_for_leader(10)
    path = Path(db._paths("n1")["token"])
    assert path.read_text().strip() == db.token and len(db.token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    argv = db.argv("n1")
    assert argv[argv.index("--token-file") + 1] == str(path)
    assert db.token not in " ".join(argv)  # not on the command line, so not in ps
    with pytest.raises(AdminError, match="HTTP 401"):
        AdminClient(provider.addresses("n1").admin).status()  # without the token
    assert db.status("n1") is not None  # the adapter's calls carry it
    assert RaftkvDB(validate({"nodes": 3, "nemesis": {"faults": []}})).token != db.token
