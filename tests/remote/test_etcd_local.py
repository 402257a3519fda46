"""A real etcd 3.4 cluster on the local provider (no root): partitions are real TCP blackholes
made by the per-destination peer proxies of harness.net.etcd_proxy."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from harness.db.etcd_client import EtcdClient
from harness.net.grudges import isolate
from harness.run import config_file
from tests.support.env import REPO, eventually, procs_naming, require_binary

pytestmark = pytest.mark.slow

T = TypeVar("T")
NODES = ["n1", "n2", "n3"]




def listening(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def etcd_on_local(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    require_binary("etcd", "etcdctl")
    from harness.db.etcd import EtcdDB
    from harness.providers.local import LocalProvider

    provider = LocalProvider(tmp_path / "work", clock=False)
    test = {"name": "etcd-local", "seed": 5, "nemesis": {"faults": ["partition", "kill"]}}
    db = EtcdDB(test)
    try:
        remotes = provider.setup(NODES)
        db.setup(provider, remotes, test)
        yield provider, db
    finally:
        db.teardown()
        provider.teardown()
        for pid in procs_naming(str(tmp_path)):  # only if teardown itself failed
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_partition_heal_kill_restart_and_teardown(etcd_on_local: tuple[Any, Any], tmp_path: Path) -> None:
    provider, db = etcd_on_local
    lead = db.wait_for_leader(20)
    c = {n: EtcdClient(provider.addresses(n).client, timeout=1.0) for n in NODES}
    assert c[lead].put("k", 1).status == "ok"
    # Members dial each other through the proxies, which learned every sender.
    hub = provider.http_peers
    assert hub is not None
    assert eventually("every link carries traffic",
                      lambda: all(hub.stats().get(f"{a}->{b}", {}).get("forwarded", 0) > 0
                                  for a in NODES for b in NODES if a != b))
    assert hub.refused == 0

    # Isolate the leader (a minority of one): the majority elects a leader and takes writes.
    grudge, _ = isolate(NODES, lead)
    provider.partition(grudge)
    rest = [n for n in NODES if n != lead]
    eventually("a write through the majority", lambda: c[rest[0]].put("k", 2).status == "ok")
    assert c[rest[1]].cas("k", 2, 3).status == "ok"
    assert c[rest[0]].get("k").value == 3
    # The isolated member serves no linearizable read and commits no write; its
    # serializable read is the stale value.
    assert c[lead].get("k").status != "ok"
    assert c[lead].put("k", 99).status != "ok"
    assert c[lead].get("k", read="serializable").value == 1
    stats = hub.stats()
    assert all(stats[f"{lead}->{n}"]["dropped"] + stats[f"{n}->{lead}"]["dropped"] > 0 for n in rest), stats
    majority_lead = eventually("a majority leader", lambda: (lambda x: x if x in rest else None)(db.leader()))

    provider.heal()
    eventually("the healed member catches up", lambda: c[lead].get("k").value == 3)
    assert c[lead].get("k").value == 3  # its uncommitted write of 99 was lost, never applied

    # kill -9 the leader and restart it with its data dir: the others elect one, it catches up.
    db.kill(majority_lead)
    assert c[majority_lead].get("k").status == "fail"  # refused: certainly not done
    new_lead = eventually("a new leader", lambda: (lambda x: x if x not in (None, majority_lead) else None)(db.leader()))
    assert c[new_lead].put("k", 4).status == "ok"
    db.start(majority_lead)
    eventually("the restarted member serves reads", lambda: c[majority_lead].get("k").value == 4)

    addrs = [a for n in NODES for a in (provider.addresses(n).client, provider.addresses(n).peer_listen,
                                         provider.http_peer_address(n))]
    assert all(listening(a) for a in addrs)
    pids = [int(Path(db._pidfile(n)).read_text()) for n in NODES]
    db.teardown()
    provider.teardown()
    assert not any(Path(f"/proc/{p}").exists() and "etcd" in Path(f"/proc/{p}/cmdline").read_text()
                   for p in pids)
    assert procs_naming(str(tmp_path)) == []
    assert not any(listening(a) for a in addrs)


def test_faultline_run_with_partitions_is_valid(store: Path, tmp_path: Path) -> None:
    """A short whole run of configs/etcd-local.yaml with partitions only (every shape, one
    every 3 s): linearizable reads must be judged valid, and nothing may be left running."""
    require_binary("etcd", "etcdctl")
    # The shipped config, shortened to keep the suite within its budget.
    cfg = config_file.read(REPO / "configs" / "etcd-local.yaml").data  # with what it extends
    cfg.update(time_limit=16, warmup=2, rate=40, recovery_timeout=15)
    cfg["nemesis"].update(faults=["partition"], interval=3, duration=2)
    config = tmp_path / "etcd-local-short.yaml"
    config.write_text(yaml.safe_dump(cfg))
    argv = [sys.executable, "-m", "harness", "run", str(config), "--store", str(store), "--seed", "41"]
    p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert "verdict: valid" in p.stdout
    run_dir = (store / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    assert results["checkers"]["linearizability"]["valid"] is True
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    partitions = [op for op in history if op["process"] == "nemesis" and op["f"] == "start-partition"]
    assert partitions and not any("error" in op for op in partitions), partitions
    assert sum(1 for op in history if op["type"] == "ok" and op["process"] != "nemesis") > 100
    assert all((run_dir / "nodes" / n / "etcd.log").exists() for n in NODES)
    assert procs_naming(str(store)) == []


def test_faultline_run_with_link_delays_is_valid(store: Path, tmp_path: Path) -> None:
    """etcd's peer streams delayed, jittered and reordered across connections by the proxies
    (loss and duplication are refused for byte streams): valid, and the delays were real."""
    require_binary("etcd", "etcdctl")
    cfg = config_file.read(REPO / "configs" / "etcd-local.yaml").data  # with what it extends
    cfg.update(time_limit=16, warmup=2, rate=40, recovery_timeout=15)
    cfg["nemesis"].update(faults=["link"], interval=3, duration=2.5, links=["delay", "jitter", "reorder"],
                          link_delay_ms=150, link_targets=["all", "node"])  # fmt: skip
    config = tmp_path / "etcd-local-links.yaml"
    config.write_text(yaml.safe_dump(cfg))
    argv = [sys.executable, "-m", "harness", "run", str(config), "--store", str(store), "--seed", "43"]
    p = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert "verdict: valid" in p.stdout
    run_dir = (store / "latest").resolve()
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    starts = [op for op in history if op["f"] == "start-link"]
    assert starts and not any("error" in op for op in starts), starts
    assert all(op["value"]["unit"] == "byte" for op in starts)
    stops = [op["value"] for op in history if op["f"] == "stop-link"]
    assert sum(v["delayed"] for v in stops) > 0, stops
    assert sum(1 for op in history if op["type"] == "ok" and op["process"] != "nemesis") > 100
    assert procs_naming(str(store)) == []
