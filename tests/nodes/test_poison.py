"""A replicated poison pill (issue 20, item 1): a conf change that no replica can apply.

`POST /members` once accepted a node name beyond 64 bits; the entry was replicated, every
replica died applying it, and none could restart from its own WAL. Now the name is refused
at the edge, the leader refuses to append an undecodable conf change (tests/raft), and an
entry that is on disk already is skipped by every replica alike.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodes.admin_client import AdminError
from nodes.raft import ConfChange, ConfChangeType, EntryType, codec
from nodes.wal import WAL, WalEntry, WalHardState
from tests.support.raftkv_cluster import REPO, Cluster

HUGE = "n9999999999999999999999999"


@pytest.fixture
def single(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, size=1, spare=0)
    try:
        c.start("n1")
        c.wait_leader(["n1"])
        yield c
    finally:
        c.close()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"op": "add-learner", "node": HUGE, "peer": "127.0.0.1:1"}, "node names are n1"),
        ({"op": "add", "node": "n18446744073709551616", "peer": "127.0.0.1:1"}, "node names are n1"),
        ({"op": "add-learner", "node": "n5", "peer": "h" * 300 + ":1"}, "peer"),
        ({"op": "add-learner", "node": "n5", "peer": "bad host:1"}, "peer"),
        ({"op": "remove", "node": "n1"}, "no voters"),
        ({"op": "remove", "node": "n7"}, "not a member"),
        ({"op": "promote", "node": "n1"}, "not a learner"),
    ],
)
def test_bad_member_change_is_refused_at_the_edge(single: Cluster, body: dict[str, str], error: str) -> None:
    adm = single.admin("n1")
    with pytest.raises(AdminError, match=f"HTTP 400.*{error}"):
        adm._call("POST", "/members", body)
    st = adm.status()
    assert st["voters"] == ["n1"] and st["learners"] == []
    with single.client("n1") as c:
        assert c.put("after", 1).status == "ok"
    single.stop("n1")
    single.start("n1")  # and it restarts from its own WAL
    single.wait_leader(["n1"])
    with single.client("n1") as c:
        assert c.get("after").value == 1


def test_undecodable_conf_change_on_disk_is_skipped_by_every_replica(tmp_path: Path) -> None:
    # a WAL written before the fix: bootstrap entry, then the poison pill, committed
    c = Cluster(tmp_path, size=1, spare=0)
    data = c.members["n1"].data_dir
    w = WAL(data / "wal")
    w.open()
    add_n1 = codec.encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, 1))
    poison = bytes([int(ConfChangeType.ADD_LEARNER_NODE)]) + b"\xff" * 10 + b"\x01\x00"
    with pytest.raises(ValueError):
        codec.decode_conf_change(poison)
    w.save(WalHardState(2, 1, 2), [
        WalEntry(1, 1, int(EntryType.CONF_CHANGE), add_n1),
        WalEntry(2, 2, int(EntryType.CONF_CHANGE), poison),
    ])
    w.close()
    try:
        c.start("n1")
        c.wait_leader(["n1"], timeout=15)
        with c.client("n1") as kc:
            assert kc.put("k", 1).status == "ok"
        st = c.status("n1")
        assert st is not None and st["voters"] == ["n1"] and st["applied"] >= 3
        log = (tmp_path / "n1.log").read_text()
        assert "entry 2 is not a conf change" in log  # said once, loudly
    finally:
        c.close()


def test_node_name_beyond_64_bits_is_a_flag_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nodes", "--id", "n1", "--data-dir", str(tmp_path / "d"),
         "--listen", "127.0.0.1:1", "--client", "127.0.0.1:2", "--admin", "127.0.0.1:3",
         "--peers", f"n1=127.0.0.1:1,{HUGE}=127.0.0.1:4"],
        cwd=REPO, capture_output=True, text=True, timeout=20,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"raftkv: --peers: node names are n1, n2, ... up to n18446744073709551615 (got {HUGE!r})"]
