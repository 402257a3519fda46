"""Smoke test: raftkv on the netns provider (iptables partitions, kill and restart)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import require_binary, require_root

pytestmark = [pytest.mark.root, pytest.mark.slow]


def eventually(what: str, fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.2)


def test_raftkv_on_netns(tmp_path: Path) -> None:
    require_root()
    require_binary("ip", "iptables")
    from harness.db.raftkv import RaftkvDB
    from harness.providers.netns import NetnsProvider
    from harness.providers.netns_remote import pid_alive
    from nodes.client import KVClient

    nodes = ["n1", "n2", "n3"]
    provider = NetnsProvider(tmp_path / "work")
    test = {"nodes": nodes, "startup_timeout": 30.0, "raft": {}}
    db = RaftkvDB(test)
    pids: list[int] = []
    clients: list[KVClient] = []

    def kv(node: str) -> KVClient:
        c = KVClient(provider.addresses(node).client, timeout=1.0)
        clients.append(c)
        return c

    try:
        remotes = provider.setup(nodes)
        db.setup(provider, remotes, test)
        lead = db.wait_for_leader(20)
        assert kv(lead).put("k", 1).status == "ok"

        # Cut one follower away both ways: the majority keeps taking writes.
        minority = next(n for n in nodes if n != lead)
        rest = [n for n in nodes if n != minority]
        provider.partition({minority: set(rest), **{n: {minority} for n in rest}})
        for i in range(2, 6):
            res = eventually("write in majority", lambda i=i: kv(db.wait_for_leader(20)).put("k", i).status == "ok")
            assert res
        assert db.status(minority) is not None and db.status(minority)["role"] != "leader"
        provider.heal()
        eventually("healed follower catches up", lambda: (db.status(minority) or {}).get("applied", 0)
                   >= (db.status(db.wait_for_leader(20)) or {}).get("commit", 1 << 60))

        # Kill the leader: another takes over; the old one restarts from its data dir.
        lead = db.wait_for_leader(20)
        db.kill(lead)
        assert not db.is_running(lead)
        eventually("new leader", lambda: db.leader() not in (None, lead))
        assert kv(db.wait_for_leader(20)).put("k", 9).status == "ok"
        db.start(lead)
        eventually("restarted node reads 9", lambda: kv(lead).get("k").value == 9)
        pids = [int(Path(db._paths(n)["pid"]).read_text()) for n in nodes]
        dest = tmp_path / "collected"
        db.collect(lead, dest / lead)
        assert (dest / lead / "events.jsonl").stat().st_size > 0
    finally:
        for c in clients:
            c.close()
        db.teardown()
        provider.teardown()
    assert pids and not any(pid_alive(p) for p in pids)
