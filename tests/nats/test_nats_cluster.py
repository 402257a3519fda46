"""A real NATS JetStream cluster (Debian's nats-server 2.9.10) on the local provider, no root:
what each client op returns, partitions that gossip cannot route around, kills, leadership and
membership through the JetStream API, and each replica's copy of the log."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest

from harness.db.nats_admin import monitor
from tests.support.env import eventually, procs_naming, require_binary

pytestmark = pytest.mark.slow

T = TypeVar("T")
NODES = ["n1", "n2", "n3"]




@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Any, Any, dict[str, Any]]]:
    require_binary("nats-server")
    from harness.db.nats import NatsDB
    from harness.providers.local import LocalProvider

    provider = LocalProvider(tmp_path / "work", clock=False)
    test = {"name": "nats-test", "seed": 3, "nodes": NODES, "workload": "log",
            "nemesis": {"faults": ["partition", "kill"]}, "workload_opts": {"timeout": 2.0}}
    db = NatsDB(test)
    try:
        remotes = provider.setup(NODES)
        db.setup(provider, remotes, test)
        yield provider, db, test
    finally:
        db.teardown()
        provider.teardown()
        for pid in procs_naming(str(tmp_path)):  # only if teardown itself failed
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_client_outcomes(cluster: tuple[Any, Any, dict[str, Any]]) -> None:
    provider, db, test = cluster
    c = db.client(test)
    c.open("n1")
    try:
        assert c.invoke({"f": "read", "key": "a"}) == {"type": "ok", "value": None}
        assert c.invoke({"f": "write", "key": "a", "value": 1}) == {"type": "ok"}
        assert c.invoke({"f": "cas", "key": "a", "value": [1, 2]}) == {"type": "ok"}
        assert c.invoke({"f": "cas", "key": "a", "value": [1, 3]}) == {"type": "fail", "error": "cas-mismatch"}
        assert c.invoke({"f": "read", "key": "a"}) == {"type": "ok", "value": 2}
        assert c.invoke({"f": "delete", "key": "a"}) == {"type": "ok"}
        assert c.invoke({"f": "read", "key": "a"}) == {"type": "ok", "value": None}
        assert c.invoke({"f": "write", "value": 5}) == {"type": "ok"}  # single register: key "r"
        assert c.invoke({"f": "read"}) == {"type": "ok", "value": 5}
        assert c.invoke({"f": "append", "value": 1}) == {"type": "ok"}
        # An update on a revision that is no longer the key's last is refused: a definite fail.
        from harness.db.nats_client import _Outcome

        c.invoke({"f": "write", "key": "b", "value": 1})
        c.invoke({"f": "write", "key": "b", "value": 2})
        assert c._loop is not None
        with pytest.raises(_Outcome) as stale:
            c._loop.run_until_complete(c._publish("$KV.fl.b", b"3", time.monotonic() + 2,
                                                  headers={"Nats-Expected-Last-Subject-Sequence": "1"}))
        assert stale.value.status == "fail" and "wrong last sequence" in stale.value.error
    finally:
        c.close()
    # A bucket nobody serves: nothing had interest, the write went nowhere.
    from harness.db.nats_client import NatsClient, Target

    nobody = NatsClient({"n1": db.url("n1")}, Target(bucket="nobody"), timeout=1.0)
    nobody.open("n1")
    try:
        assert nobody.invoke({"f": "write", "key": "a", "value": 1}) == {"type": "fail", "error": "no responders"}
    finally:
        nobody.close()
    # A dead server: the connection is refused before anything is sent.
    db.kill("n2")
    c2 = db.client(test)
    c2.open("n2")
    try:
        res = c2.invoke({"f": "write", "key": "a", "value": 9})
        assert res["type"] == "fail" and res["error"].startswith("connect"), res
    finally:
        c2.close()


def _delivered(urls: dict[str, str], src: str, dst: str) -> int:
    """Messages published through `src` that a subscriber on `dst` receives."""
    async def main() -> int:
        got: list[bytes] = []
        sub_c = await nats.connect(urls[dst], allow_reconnect=False)
        pub_c = await nats.connect(urls[src], allow_reconnect=False)

        async def cb(m: Any) -> None:
            got.append(m.data)

        await sub_c.subscribe("probe", cb=cb)
        await sub_c.flush()
        await asyncio.sleep(1.0)  # let the interest reach the others (where it can)
        for i in range(5):
            await pub_c.publish("probe", b"%d" % i)
        await pub_c.flush()
        await asyncio.sleep(1.0)
        await pub_c.close()
        await sub_c.close()
        return len(got)

    return asyncio.run(main())


def test_partition_is_real_after_a_restart_behind_it(cluster: tuple[Any, Any, dict[str, Any]]) -> None:
    """n1 | n3 cut, n2 sees both; n3 is restarted during the cut. NATS gossips n3's route
    address to n1 through n2, and n1 would dial it directly (measured without the adapter's
    dead advertised address: 5 of 5 messages crossed); with it, none may cross."""
    provider, db, _ = cluster
    urls = {n: db.url(n) for n in NODES}
    assert _delivered(urls, "n1", "n3") == 5
    grudge = {"n1": {"n3"}, "n3": {"n1"}, "n2": set()}
    provider.partition(grudge)
    db.kill("n3")
    db.start("n3")
    time.sleep(3)
    assert _delivered(urls, "n1", "n3") == 0
    assert _delivered(urls, "n3", "n1") == 0
    assert _delivered(urls, "n1", "n2") == 5
    # every route goes through a proxy: no server dialled another's cluster port itself
    cluster_ports = {provider.addresses(n).peer_listen[1] for n in NODES}
    for n in NODES:
        routes = (monitor(provider.addresses(n).admin, "/routez") or {}).get("routes") or []
        assert not any(r.get("did_solicit") and r.get("port") in cluster_ports for r in routes), (n, routes)
    provider.heal()
    eventually("n1 reaches n3 again", lambda: _delivered(urls, "n1", "n3") == 5, timeout=30)


def test_leadership_membership_and_replica_copies(cluster: tuple[Any, Any, dict[str, Any]], tmp_path: Path) -> None:
    provider, db, test = cluster
    c = db.client(test)
    c.open("n1")
    try:
        for v in range(1, 21):
            assert c.invoke({"f": "append", "value": v}) == {"type": "ok"}
    finally:
        c.close()
    lead = db.wait_for_leader(10)
    db.step_down()
    assert eventually("a new leader", lambda: (lambda x: x if x not in (None, lead) else None)(db.leader()))
    to = next(n for n in NODES if n != db.leader())
    db.move_leader(to)
    assert db.leader() == to
    follower = next(n for n in NODES if n != to)
    db.remove_member(follower)
    assert db.members() == sorted(n for n in NODES if n != follower)
    db.add_member(follower)
    assert db.members() == NODES
    copies = db.read_replicas(tmp_path / "replicas", timeout=30)
    assert set(copies) == set(NODES)
    for node, copy in copies.items():
        assert [v for _, v in copy["msgs"]] == list(range(1, 21)), node
        assert copy["caught_up"] is True and copy["notes"] == []


def test_sync_interval_is_refused_by_2_9(tmp_path: Path) -> None:
    require_binary("nats-server")
    from harness.db.nats import NatsDB
    from harness.protocols import HarnessError
    from harness.providers.local import LocalProvider

    provider = LocalProvider(tmp_path / "work", clock=False)
    test = {"name": "t", "seed": 1, "nodes": NODES, "nemesis": {"faults": []},
            "db_opts": {"sync_interval": "always"}}
    db = NatsDB(test)
    try:
        remotes = provider.setup(NODES)
        version = subprocess.run(["nats-server", "--version"], capture_output=True, text=True).stdout
        if "v2.9." not in version:
            pytest.skip(f"not nats-server 2.9 ({version.strip()})")
        with pytest.raises(HarnessError, match=r"db_opts.sync_interval: nats-server v2\.9\.\d+ on n1 has no sync_interval"):
            db.setup(provider, remotes, test)
    finally:
        db.teardown()
        provider.teardown()
    assert procs_naming(str(tmp_path)) == []
