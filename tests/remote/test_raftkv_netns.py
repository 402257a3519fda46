"""Smoke test: raftkv on the netns provider (iptables partitions, kill and restart)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.env import require_binary, require_root
from tests.support.raftkv_scenario import partition_heal_kill_restart

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_raftkv_on_netns(tmp_path: Path) -> None:
    require_root()
    require_binary("ip", "iptables")
    from harness.db.raftkv import RaftkvDB
    from harness.providers.netns import NetnsProvider
    from harness.remotes.netns import pid_alive

    nodes = ["n1", "n2", "n3"]
    provider = NetnsProvider(tmp_path / "work")
    test = {"nodes": nodes, "startup_timeout": 30.0, "raft": {}}
    db = RaftkvDB(test)
    pids: list[int] = []
    try:
        remotes = provider.setup(nodes)
        db.setup(provider, remotes, test)
        lead = partition_heal_kill_restart(db, provider, nodes)
        pids = [int(Path(db._paths(n)["pid"]).read_text()) for n in nodes]
        dest = tmp_path / "collected"
        db.collect(lead, dest / lead)
        assert (dest / lead / "events.jsonl").stat().st_size > 0
    finally:
        db.teardown()
        provider.teardown()
    assert pids and not any(pid_alive(p) for p in pids)
