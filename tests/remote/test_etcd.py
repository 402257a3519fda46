"""A real etcd 3.4 cluster driven by the etcd adapter and the JSON-gateway client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.db.etcd_client import EtcdClient, EtcdOpClient
from harness.protocols import HarnessError, Provider
from tests.support.env import eventually, require_binary, require_root

pytestmark = pytest.mark.slow




def test_connection_refused_is_fail_and_lost_is_info() -> None:
    import socket
    import threading

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens: certainly not applied.
    res = EtcdClient(("127.0.0.1", port), timeout=1.0).put("k", 1)
    assert res.status == "fail" and res.error and "connect" in res.error

    # A server that accepts, reads the request and never answers: indeterminate.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held: list[socket.socket] = []

    def accept() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        res = EtcdClient(srv.getsockname(), timeout=0.5).cas("k", 1, 2)
        assert (res.status, res.error) == ("info", "timeout")
        # A read that times out changed nothing: fail, as in nodes.client.
        t.join(5)
        t = threading.Thread(target=accept, daemon=True)
        t.start()
        res = EtcdClient(srv.getsockname(), timeout=0.5).get("k")
        assert (res.status, res.error) == ("fail", "timeout")
    finally:
        t.join(5)
        for c in held:
            c.close()
        srv.close()


@pytest.fixture
def etcd_on_netns(tmp_path: Path) -> Iterator[tuple[Provider, Any]]:
    require_root()
    require_binary("ip", "iptables", "etcd", "etcdctl")
    from harness.db.etcd import EtcdDB
    from harness.providers.netns import NetnsProvider

    provider = NetnsProvider(tmp_path)
    test = {"name": "etcd-test", "seed": 7, "nemesis": {"faults": ["partition", "kill"]},
            "db_opts": {"dir": str(tmp_path / "etcd")}, "workload_opts": {"timeout": 1.0}}
    db = EtcdDB(test)
    try:
        remotes = provider.setup(["n1", "n2", "n3"])
        db.setup(provider, remotes, test)
        yield provider, db
    finally:
        db.teardown()
        provider.teardown()


def test_etcd_on_netns(etcd_on_netns: tuple[Provider, Any], tmp_path: Path) -> None:
    provider, db = etcd_on_netns
    lead = db.wait_for_leader(20)
    assert db.members() == ["n1", "n2", "n3"]
    c = {n: EtcdClient(provider.addresses(n).client, timeout=1.0) for n in db.nodes}

    # get / put / cas / delete, through a follower too.
    follower = next(n for n in db.nodes if n != lead)
    assert c[lead].get("k").value is None
    assert c[lead].put("k", 1).status == "ok"
    assert c[follower].get("k").value == 1
    assert c[follower].cas("k", 1, 2).status == "ok"
    mismatch = c[lead].cas("k", 1, 3)
    assert (mismatch.status, mismatch.error) == ("fail", "cas-mismatch")
    assert c[lead].cas("fresh", None, "a").status == "ok"
    assert c[lead].cas("fresh", None, "b").error == "cas-mismatch"
    assert c[lead].get("fresh", read="serializable").value in ("a", None)
    assert c[lead].delete("fresh").status == "ok"
    assert c[lead].get("fresh").value is None

    # The harness Client shape.
    op_client = db.client({"workload_opts": {"timeout": 1.0}})
    assert isinstance(op_client, EtcdOpClient)
    op_client.open(follower)
    done = op_client.invoke({"process": 0, "type": "invoke", "f": "cas", "key": "k", "value": [2, 5]})
    assert done["type"] == "ok" and done["value"] == [2, 5]
    done = op_client.invoke({"process": 0, "type": "invoke", "f": "read", "key": "k", "value": None})
    assert (done["type"], done["value"]) == ("ok", 5)

    # Kill the leader: the others elect one; restart it with its data dir and it catches up.
    db.kill(lead)
    new_lead = eventually("a new leader", lambda: (lambda x: x if x not in (None, lead) else None)(db.leader()))
    assert c[new_lead].put("k", 6).status == "ok"
    db.start(lead)
    eventually("old leader serves the new value", lambda: c[lead].get("k").value == 6)

    # move-leader.
    target = next(n for n in db.nodes if n != new_lead)
    db.transfer_leader(target)
    eventually("leadership moved", lambda: db.leader() == target)

    # Partition the leader away: the majority elects a leader and takes writes; the old
    # leader's linearizable reads do not succeed, its serializable reads may be stale.
    rest = [n for n in db.nodes if n != target]
    provider.partition({target: set(rest), **{n: {target} for n in rest}})
    eventually("majority leader", lambda: c[rest[0]].put("k", 7).status == "ok", timeout=20)
    assert c[target].get("k").status != "ok"
    assert c[target].get("k", read="serializable").value == 6
    provider.heal()
    eventually("healed minority catches up", lambda: c[target].get("k").value == 7, timeout=20)

    # Membership: remove a member, then add it back with a fresh data dir.
    gone = rest[1]
    db.remove_member(gone)
    assert db.members() == sorted(n for n in db.nodes if n != gone)
    db.add_member(gone)
    eventually("re-added member serves reads", lambda: c[gone].get("k").value == 7, timeout=20)
    assert db.members() == ["n1", "n2", "n3"]

    # Pause: a paused member answers nothing; resumed, it does.
    db.pause(gone)
    assert c[gone].get("k").status != "ok"
    db.resume(gone)
    eventually("resumed member answers", lambda: c[gone].get("k").value == 7)

    dest = tmp_path / "collected" / lead
    db.collect(lead, dest)
    assert "etcd" in (dest / "etcd.log").read_text()

    pids = [int(Path(db._pidfile(n)).read_text()) for n in db.nodes]
    db.teardown()
    from harness.remotes.netns import pid_alive

    assert not any(pid_alive(p) for p in pids)


def test_etcd_refuses_partitions_with_per_link_proxies(tmp_path: Path) -> None:
    from harness.db.etcd import EtcdDB
    from harness.providers.local import LocalProvider

    class ProxiedPeers:
        """Per-link peer proxies like the local provider's, but without its per-member
        `http_peer_address`: etcd's links cannot be cut one by one there."""

        name = "proxied"

        def message_hub(self) -> object:
            return object()

    db = EtcdDB({"name": "t", "seed": 1, "db_opts": {"dir": str(tmp_path)}})
    why = db.refuse_fault("partition", ProxiedPeers())  # type: ignore[arg-type]
    assert why is not None and "per-link proxies cannot cut one link" in why
    assert db.refuse_fault("partition", LocalProvider(tmp_path)) is None
    assert "libfaketime cannot reach it" in (db.refuse_fault("clock", LocalProvider(tmp_path)) or "")
    with pytest.raises(HarnessError, match=r"db_opts.nope: unknown etcd option"):
        EtcdDB({"db_opts": {"nope": 1}})


def test_etcd_on_local(tmp_path: Path) -> None:
    """3 members on loopback (no root): bootstrap, client ops, kill/restart leader, move-leader."""
    require_binary("etcd", "etcdctl")
    from harness.db.etcd import EtcdDB
    from harness.providers.local import LocalProvider
    from harness.remotes.netns import pid_alive

    provider = LocalProvider(tmp_path / "work", clock=False)
    test = {"name": "etcd-local", "seed": 3, "nemesis": {"faults": ["kill", "transfer"]},
            "db_opts": {"dir": str(tmp_path / "etcd")}}
    db = EtcdDB(test)
    pids: list[int] = []
    try:
        remotes = provider.setup(["n1", "n2", "n3"])
        db.setup(provider, remotes, test)
        lead = db.wait_for_leader(20)
        c = {n: EtcdClient(provider.addresses(n).client, timeout=1.0) for n in db.nodes}
        assert c[lead].put("x", "a").status == "ok"
        follower = next(n for n in db.nodes if n != lead)
        assert c[follower].cas("x", "a", "b").status == "ok"
        assert c[follower].cas("x", "a", "c").error == "cas-mismatch"
        assert c[lead].get("x").value == "b"

        db.kill(lead)
        assert c[lead].get("x").status == "fail"  # connection refused: certainly not done
        new_lead = eventually("a new leader", lambda: (lambda x: x if x not in (None, lead) else None)(db.leader()))
        db.start(lead)
        eventually("restarted leader serves reads", lambda: c[lead].get("x").value == "b")
        target = next(n for n in db.nodes if n != new_lead)
        db.transfer_leader(target)
        eventually("leadership moved", lambda: db.leader() == target)
        pids = [int(Path(db._pidfile(n)).read_text()) for n in db.nodes]
        assert all(pid_alive(p) for p in pids)
    finally:
        db.teardown()
        provider.teardown()
    assert pids and not any(pid_alive(p) for p in pids)
    dirs = list((tmp_path / "etcd").glob("faultline-etcd-n1.*"))  # the member's private dir
    assert len(dirs) == 1 and (dirs[0] / "etcd.log").exists() and not (dirs[0] / "data").exists()
    db.collect("n1", tmp_path / "out" / "n1")  # the runner collects after teardown
    assert "etcd" in (tmp_path / "out" / "n1" / "etcd.log").read_text()


def _status_row(node: int, term: int, leader: int) -> dict[str, Any]:
    return {"Endpoint": f"http://127.0.0.1:{21000 + node}",
            "Status": {"header": {"member_id": node}, "raft_term": term, "leader": leader}}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([_status_row(1, 2, 1), _status_row(2, 2, 1), _status_row(3, 2, 1)], "n1"),
        # A deposed leader's stale view loses to the higher term's.
        ([_status_row(1, 2, 1), _status_row(2, 3, 3), _status_row(3, 3, 3)], "n3"),
        # A partitioned member campaigning alone runs its term ahead but knows no leader.
        ([_status_row(1, 9, 0), _status_row(2, 3, 3), _status_row(3, 3, 3)], "n3"),
        ([_status_row(1, 9, 0), _status_row(2, 4, 0)], None),
        ([], None),
    ],
)
def test_leader_is_the_highest_term_view_that_names_one(rows: list[dict[str, Any]], expected: str | None) -> None:
    from harness.db.etcd import EtcdDB
    from harness.protocols import NodeAddresses

    class Addresses:
        def addresses(self, node: str) -> NodeAddresses:
            k = int(node[1:])
            return NodeAddresses(("127.0.0.1", 20000 + k), ("127.0.0.1", 21000 + k), ("127.0.0.1", 22000 + k))

    db = EtcdDB({"name": "t", "seed": 1})
    db.provider = Addresses()  # type: ignore[assignment]
    db._members = ["n1", "n2", "n3"]
    db._status = lambda: rows  # type: ignore[method-assign]
    assert db.leader() == expected
