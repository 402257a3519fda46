"""Multi-process raftkv clusters on loopback: election, reads and writes, crashes, membership,
leadership transfer, compaction and snapshot catch-up."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodes.admin_client import AdminError
from tests.support.raftkv_cluster import REPO, Cluster, put_with_retry

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        c.start_all()
        yield c
    finally:
        c.close()


def followers(c: Cluster, lead: str) -> list[str]:
    return [n for n in c.initial if n != lead]


def test_elects_leader_serves_writes_and_linearizable_reads(cluster: Cluster) -> None:
    lead = cluster.wait_leader()
    f = followers(cluster, lead)[0]
    with cluster.client(lead) as lc, cluster.client(f) as fc:
        assert lc.put("x", 1).status == "ok"
        assert fc.get("x").value == 1  # a follower read goes through the leader's ReadIndex
        r = fc.put("y", "a")  # forwarded to the leader by Raft
        assert (r.status, r.value) == ("ok", "a")
        assert lc.get("y").value == "a"
        assert lc.cas("x", 1, 2).status == "ok"
        miss = fc.cas("x", 1, 3)
        assert (miss.status, miss.error, miss.value) == ("fail", "cas-mismatch", 2)
        assert lc.cas("absent", None, 7).status == "ok"
        assert lc.delete("x").status == "ok"
        assert fc.get("x").value is None
        assert fc.get("y", read="serializable").status == "ok"
    st = cluster.admin(lead).status()
    assert st["role"] == "leader" and st["voters"] == ["n1", "n2", "n3"]
    assert set(st["progress"]) == {"n1", "n2", "n3"}
    evs = cluster.events(lead)  # role changes flush the buffer
    kinds = {e["type"] for e in evs}
    assert {"boot", "role", "vote", "conf"} <= kinds
    assert any(e["type"] == "role" and e["role"] == "leader" for e in evs)


def test_leader_sigkill_and_restart_keeps_acknowledged_writes(cluster: Cluster) -> None:
    lead = cluster.wait_leader()
    with cluster.client(lead) as c:
        for i in range(20):
            assert c.put(f"k{i}", i).status == "ok"
    cluster.kill(lead)
    rest = followers(cluster, lead)
    new = cluster.wait_leader(rest)
    assert new != lead
    with cluster.client(new) as c:
        assert [c.get(f"k{i}").value for i in range(20)] == list(range(20))
        put_with_retry(c, "after", "kill")
    cluster.start(lead)
    lead2 = cluster.wait_leader()
    st = cluster.admin(lead2).status()
    cluster.wait_applied(lead, st["commit"])
    with cluster.client(lead) as c:
        assert c.get("k7", read="serializable").value == 7
        assert c.get("after").value == "kill"
    boot = cluster.wait_event(lead, lambda e: e["type"] == "boot" and e["boot"] == 2)
    assert boot["commit"] >= 20 and boot["term"] >= 2
    assert boot["voters"] == ["n1", "n2", "n3"]


def test_sigterm_is_clean(cluster: Cluster) -> None:
    cluster.wait_leader()
    assert cluster.stop("n1") == 0
    evs = cluster.events("n1")
    assert evs and evs[0]["type"] == "boot"


def test_transfer_leadership(cluster: Cluster) -> None:
    lead = cluster.wait_leader()
    to = followers(cluster, lead)[0]
    out = cluster.admin(lead).transfer_leader(to)
    assert out["lead"] == to
    assert cluster.wait_leader() == to


def test_follower_wiped_and_readded(cluster: Cluster) -> None:
    lead = cluster.wait_leader()
    victim = followers(cluster, lead)[0]
    with cluster.client(lead) as c:
        for i in range(10):
            assert c.put(f"w{i}", i).status == "ok"
    adm = cluster.admin(lead)
    out = adm.remove_member(victim)
    assert victim not in out["voters"]
    cluster.kill(victim)
    shutil.rmtree(cluster.members[victim].data_dir)
    cluster.start(victim, join=True)
    out = adm.add_member(victim, peer=f"127.0.0.1:{cluster.members[victim].peer}")
    assert victim in out["voters"]
    st = adm.status()
    cluster.wait_applied(victim, st["commit"])
    with cluster.client(victim) as c:
        assert c.get("w9", read="serializable").value == 9
    assert cluster.wait_leader() in cluster.initial


def test_add_learner_promote_and_remove(cluster: Cluster) -> None:
    lead = cluster.wait_leader()
    adm = cluster.admin(lead)
    n4 = cluster.members["n4"]
    cluster.start("n4", join=True)
    out = adm.add_member("n4", peer=f"127.0.0.1:{n4.peer}", learner=True)
    assert out["learners"] == ["n4"]
    with cluster.client(lead) as c:
        assert c.put("l", 1).status == "ok"
    cluster.wait_applied("n4", adm.status()["commit"])
    out = adm.promote("n4")
    assert out["voters"] == ["n1", "n2", "n3", "n4"] and out["learners"] == []
    out = adm.remove_member("n4")
    assert "n4" not in out["voters"]
    with pytest.raises(AdminError, match="HTTP 400"):
        adm.add_member("nope")


def test_compaction_catches_lagging_node_up_by_snapshot(cluster: Cluster) -> None:
    lead = cluster.wait_leader()
    lag = followers(cluster, lead)[0]
    cluster.kill(lag)
    with cluster.client(lead) as c:
        for i in range(30):
            assert c.put(f"s{i}", i).status == "ok"
    snap = cluster.admin(lead).compact()
    assert snap["index"] >= 30
    assert any(p.name.startswith("snap-") for p in (cluster.members[lead].data_dir / "snap").iterdir())
    cluster.start(lag)
    cluster.wait_applied(lag, snap["index"])
    with cluster.client(lag) as c:
        assert c.get("s29", read="serializable").value == 29
    cluster.wait_event(lag, lambda e: e["type"] == "snapshot" and e["source"] == "leader")
    # the leader restarts from its snapshot plus the log after it
    cluster.kill(lead)
    cluster.start(lead)
    boot = cluster.wait_event(lead, lambda e: e["type"] == "boot" and e["boot"] == 2)
    assert boot["snapshot_index"] == snap["index"]
    cluster.wait_leader()
    cluster.wait_applied(lead, snap["index"])
    with cluster.client(lead) as c:
        assert c.get("s0", read="serializable").value == 0


def test_stale_read_bug_answers_without_quorum(tmp_path: Path) -> None:
    """With followers gone, a linearizable read cannot complete; stale-read answers it."""
    for bug, expect in ((None, "fail"), ("stale-read", "ok")):
        extra = ["--no-check-quorum"] + (["--bug", bug] if bug else [])
        c = Cluster(tmp_path / (bug or "correct"), extra=extra)
        try:
            c.start_all()
            lead = c.wait_leader()
            with c.client(lead, timeout=5.0) as kc:
                assert kc.put("r", 1).status == "ok"
                for f in followers(c, lead):
                    c.kill(f)
                time.sleep(0.3)
                r = kc.get("r")
                assert r.status == expect, (bug, r)
                assert c.admin(lead).status()["bugs"] == ([bug] if bug else [])
        finally:
            c.close()


def test_sigkill_of_every_node_loses_no_acknowledged_write(cluster: Cluster) -> None:
    """Writers run until all three processes are SIGKILLed at once; every ok write survives."""
    lead = cluster.wait_leader()
    acked: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        with cluster.client(cluster.initial[w % 3], timeout=2.0) as c:
            i = 0
            while not stop.is_set():
                r = c.put(f"d{w}-{i}", i)
                if r.status == "ok":
                    with lock:
                        acked[f"d{w}-{i}"] = i
                elif r.status == "fail" and r.error == "connect: Connection refused":
                    return
                i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    for n in cluster.initial:
        cluster.signal(n, 9)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    for n in cluster.initial:
        cluster.kill(n)
    with lock:
        snapshot = dict(acked)
    assert len(snapshot) > 10, "too few writes acknowledged to mean anything"
    for n in cluster.initial:
        cluster.start(n)
    lead = cluster.wait_leader()
    with cluster.client(lead) as c:
        missing = [k for k, v in snapshot.items() if c.get(k).value != v]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"


def test_paused_leader_is_replaced_and_rejoins(cluster: Cluster) -> None:
    lead = cluster.wait_leader()
    with cluster.client(lead) as c:
        assert c.put("p", 1).status == "ok"
    cluster.signal(lead, 19)  # SIGSTOP
    try:
        rest = followers(cluster, lead)
        new = cluster.wait_leader(rest)
        with cluster.client(new) as c:
            put_with_retry(c, "p", 2)
    finally:
        cluster.signal(lead, 18)  # SIGCONT
    assert cluster.wait_leader() == new
    with cluster.client(lead) as c:
        assert c.get("p").value == 2  # the old leader now reads through the new one
    commit = cluster.admin(new).status()["commit"]
    cluster.wait_event(lead, lambda e: e["type"] == "commit" and e["index"] >= commit)


@pytest.mark.parametrize("mode", ["lease", "serializable"])
def test_read_modes(tmp_path: Path, mode: str) -> None:
    c = Cluster(tmp_path, spare=0, extra=["--read-mode", mode])
    try:
        c.start_all()
        lead = c.wait_leader()
        with c.client(lead) as kc:
            assert kc.put("m", mode).status == "ok"
            assert kc.get("m").value == mode
        assert c.admin(lead).status()["read_mode"] == mode
    finally:
        c.close()


def test_joined_data_dir_never_bootstraps(cluster: Cluster) -> None:
    cluster.wait_leader()
    cluster.start("n4", join=True)
    cluster.wait_event("n4", lambda e: e["type"] == "boot")
    cluster.kill("n4")
    m = cluster.members["n4"]
    argv = [a for a in cluster.argv("n4", join=True) if a != "--join"]
    m.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    st = None
    while st is None and time.monotonic() < deadline:
        st = cluster.status("n4")
        time.sleep(0.1)
    assert st is not None
    time.sleep(2.5)  # more than an election timeout: a bootstrapped node would campaign
    st = cluster.status("n4")
    assert st is not None and st["voters"] == [] and st["last_index"] == 0 and st["role"] == "follower"


def test_automatic_snapshots_are_written_off_the_loop_and_survive_kill(tmp_path: Path) -> None:
    c = Cluster(tmp_path, spare=0, extra=["--snapshot-count", "40"])
    try:
        c.start_all()
        lead = c.wait_leader()
        with c.client(lead) as kc:
            for i in range(130):
                assert kc.put(f"a{i}", i).status == "ok"
        for n in c.initial:
            ev = c.wait_event(n, lambda e: e["type"] == "snapshot" and e["source"] == "local")
            assert ev["index"] >= 40
            assert any(p.name.startswith("snap-") for p in (c.members[n].data_dir / "snap").iterdir())
        c.kill(lead)
        c.start(lead)
        boot = c.wait_event(lead, lambda e: e["type"] == "boot" and e["boot"] == 2)
        assert boot["snapshot_index"] >= 40
        c.wait_leader()
        c.wait_applied(lead, 130)
        with c.client(lead) as kc:
            assert [kc.get(f"a{i}", read="serializable").value for i in (0, 64, 129)] == [0, 64, 129]
    finally:
        c.close()
