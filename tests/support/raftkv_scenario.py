"""The provider scenario the control-plane issue asks of every provider, on a running raftkv
cluster: a minority cut away while the majority takes writes, heal and catch-up, the leader
killed while another takes over, then restarted from its data. Shared by the netns and docker
tests (each sets up and tears down its own hosts)."""

from __future__ import annotations

from collections.abc import Sequence

from harness.db.raftkv import RaftkvDB
from harness.protocols import Provider
from nodes.client import KVClient
from tests.support.env import eventually


def partition_heal_kill_restart(db: RaftkvDB, provider: Provider, nodes: Sequence[str]) -> str:
    """Run the scenario; returns the leader that was killed and restarted."""
    clients: list[KVClient] = []

    def kv(node: str) -> KVClient:
        c = KVClient(provider.addresses(node).client, timeout=1.0)
        clients.append(c)
        return c

    try:
        lead = db.wait_for_leader(20)
        assert kv(lead).put("k", 1).status == "ok"

        # Cut one follower away both ways: the majority keeps taking writes.
        minority = next(n for n in nodes if n != lead)
        rest = [n for n in nodes if n != minority]
        provider.partition({minority: set(rest), **{n: {minority} for n in rest}})
        for i in range(2, 6):
            def majority_write(i: int = i) -> bool:
                return kv(db.wait_for_leader(20)).put("k", i).status == "ok"

            assert eventually("write in majority", majority_write)
        st = db.status(minority)
        assert st is not None and st["role"] != "leader"
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
        return lead
    finally:
        for c in clients:
            c.close()
