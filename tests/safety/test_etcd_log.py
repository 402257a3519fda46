"""etcd 3.4 raft log lines (zap JSON and capnslog text) read as node events and judged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from checkers.safety import check
from checkers.safety.etcd_log import read_etcd_logs
from tests.support.env import require_binary
from tests.support.raftkv_cluster import free_ports

A, B, C = "d8812d7cd4d463e", "9e8217a12029fcba", "3eb5319275c205c9"


def zap(ts: str, msg: str, caller: str = "raft/raft.go:706") -> str:
    return json.dumps({"level": "info", "ts": f"2026-11-26T14:06:{ts}Z", "caller": caller,
                       "msg": msg})


def capns(ts: str, msg: str) -> str:
    return f"raft2026/11/26 14:06:{ts} INFO: {msg}"


def start_lines(me: str, ts: str, term: int = 0, commit: int = 0) -> list[tuple[str, str]]:
    return [
        (ts, f"{me} switched to configuration voters=()"),
        (ts, f"{me} became follower at term {term}"),
        (ts, f"newRaft {me} [peers: [], term: {term}, commit: {commit}, applied: 0, "
             f"lastindex: {commit}, lastterm: {term}]"),
    ]


# What a 3-member cluster logs (taken from etcd 3.4.23): B leads term 2, A is killed, C leads
# term 3, B leads term 4.
CLUSTER: dict[str, list[tuple[str, str]]] = {
    "e1": start_lines(A, "40.650") + [
        ("40.650", f"{A} became follower at term 1"),
        ("40.929", f"{A} became follower at term 2"),
        ("40.930", f"{A} [logterm: 1, index: 3, vote: 0] cast MsgVote for {B} [logterm: 1, "
                   f"index: 3] at term 2"),
        ("40.930", f"raft.node: {A} elected leader {B} at term 2"),
    ],
    "e2": start_lines(B, "40.627") + [
        ("40.628", f"{B} became follower at term 1"),
        ("40.929", f"{B} became candidate at term 2"),
        ("40.930", f"{B} became leader at term 2"),
        ("40.930", f"raft.node: {B} elected leader {B} at term 2"),
        ("49.632", f"{B} became follower at term 3"),
        ("49.632", f"raft.node: {B} lost leader {B} at term 3"),
        ("49.633", f"raft.node: {B} elected leader {C} at term 3"),
        ("49.636", f"{B} became candidate at term 4"),
        ("49.636", f"raft.node: {B} lost leader {C} at term 4"),
        ("49.639", f"{B} became leader at term 4"),
    ],
    "e3": start_lines(C, "40.678") + [
        ("40.678", f"{C} became follower at term 1"),
        ("40.930", f"{C} became follower at term 2"),
        ("40.930", f"raft.node: {C} elected leader {B} at term 2"),
        ("49.628", f"{C} became pre-candidate at term 2"),
        ("49.628", f"{C} became candidate at term 3"),
        ("49.629", f"raft.node: {C} lost leader {B} at term 3"),
        ("49.632", f"{C} became leader at term 3"),
        ("49.637", f"{C} became follower at term 4"),
        ("49.637", f"raft.node: {C} lost leader {C} at term 4"),
        ("49.640", f"raft.node: {C} elected leader {B} at term 4"),
    ],
}


def write_logs(tmp_path: Path, logs: dict[str, list[tuple[str, str]]], fmt: str,
               noise: bool = True) -> dict[str, Path]:
    out = {}
    for node, lines in logs.items():
        text = []
        if noise:
            text.append(zap("40.600", "starting an etcd server", "embed/etcd.go:305") if fmt == "zap"
                        else "2026-11-26 14:06:40.600000 I | etcdmain: etcd Version: 3.4.23")
        for ts, msg in lines:
            text.append(zap(ts, msg) if fmt == "zap" else capns(ts.split(".")[0], msg))
        path = tmp_path / f"{node}-{fmt}.log"
        path.write_text("\n".join(text) + "\n")
        out[node] = path
    return out


@pytest.mark.parametrize("fmt", ["zap", "capnslog"])
def test_cluster_log_reads_as_role_events(tmp_path: Path, fmt: str) -> None:
    events = read_etcd_logs(write_logs(tmp_path, CLUSTER, fmt))
    e2 = [(e["type"], e.get("role"), e["term"], e.get("lead")) for e in events["e2"]]
    assert e2 == [
        ("boot", None, 0, None), ("role", "follower", 0, None), ("role", "follower", 1, None),
        ("role", "candidate", 2, None), ("role", "leader", 2, "e2"),
        ("role", "follower", 3, None), ("role", "follower", 3, None),
        ("role", "follower", 3, "e3"), ("role", "candidate", 4, None),
        ("role", "candidate", 4, None), ("role", "leader", 4, "e2"),
    ]
    assert {e["boot"] for evs in events.values() for e in evs} == {1}
    result = check(events)
    assert result.valid is True, result.details["violations"]
    roles = [(s["role"], s["term"]) for s in result.details["timeline"]["e3"]]
    assert ("leader", 3) in roles


def test_zap_timestamps_are_utc_seconds(tmp_path: Path) -> None:
    events = read_etcd_logs(write_logs(tmp_path, CLUSTER, "zap"))
    leader = [e for e in events["e2"] if e.get("role") == "leader"][0]
    assert leader["ts"] == pytest.approx(1795702000.930)


def test_two_leaders_in_one_term_are_caught(tmp_path: Path) -> None:
    logs = {k: list(v) for k, v in CLUSTER.items()}
    logs["e1"] += [("50.000", f"{A} became candidate at term 4"),
                   ("50.001", f"{A} became leader at term 4")]
    result = check(read_etcd_logs(write_logs(tmp_path, logs, "zap")))
    assert result.valid is False
    [v] = result.details["violations"]
    assert v["kind"] == "election-safety" and v["term"] == 4
    assert set(v["nodes"]) >= {"e1", "e2"}


def test_follower_naming_another_leader_is_caught(tmp_path: Path) -> None:
    logs = {k: list(v) for k, v in CLUSTER.items()}
    logs["e1"] += [("50.000", f"raft.node: {A} changed leader from {B} to {A} at term 3")]
    logs["e1"] += [("50.001", f"raft.node: {A} changed leader from {A} to {C} at term 4")]
    result = check(read_etcd_logs(write_logs(tmp_path, logs, "capnslog"),
                                  member_names={A: "e1"}))
    kinds = {v["kind"] for v in result.details["violations"]}
    assert kinds == {"election-safety"}
    assert [v["term"] for v in result.details["violations"]] == [4]


def test_restart_opens_a_new_boot_and_term_regress_is_caught(tmp_path: Path) -> None:
    logs = {k: list(v) for k, v in CLUSTER.items()}
    logs["e1"] += start_lines(A, "55.000", term=2, commit=8)
    logs["e1"] += [("56.000", f"{A} became follower at term 4"),
                   ("56.500", f"{A} became follower at term 3")]
    events = read_etcd_logs(write_logs(tmp_path, logs, "zap"))
    boots = [(e["boot"], e["type"], e["term"]) for e in events["e1"] if e["boot"] == 2]
    assert boots[:2] == [(2, "boot", 2), (2, "role", 2)]
    result = check(events)
    assert [v["kind"] for v in result.details["violations"]] == ["monotonicity"]


def test_wiped_member_is_a_new_incarnation(tmp_path: Path) -> None:
    logs = {k: list(v) for k, v in CLUSTER.items()}
    logs["e1"] += start_lines(A, "55.000", term=2, commit=8)
    logs["e1"] += start_lines("77aa", "58.000")  # data dir wiped, re-added under a new id
    logs["e1"] += [("58.100", "77aa became follower at term 4")]
    events = read_etcd_logs(write_logs(tmp_path, logs, "zap"))
    assert [e["boot"] for e in events["e1"] if e["type"] == "boot"] == [1, 2, 1]
    assert check(events).valid is True


def test_unknown_member_ids_and_torn_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "e9.log"
    path.write_text(
        zap("40.000", f"raft.node: {A} elected leader 1234abcd at term 2") + "\n"
        + zap("40.100", f"{A} became leader at term 3") + "\n"
        + '{"level":"info","ts":"2026-11-26T14:06:41.000Z","msg":"d88'
    )
    events = read_etcd_logs({"e9": path})
    assert [(e["role"], e["term"]) for e in events["e9"]] == [("leader", 3)]


@pytest.fixture
def etcd_cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Three real etcd members on loopback, stopped by pid at the end."""
    require_binary("etcd")
    names = ["e1", "e2", "e3"]
    # Chosen together so that no two are the same (one at a time, a port can come back).
    ports = iter(free_ports(2 * len(names)))
    peer = {n: next(ports) for n in names}
    initial = ",".join(f"{n}=http://127.0.0.1:{peer[n]}" for n in names)
    procs: list[subprocess.Popen[bytes]] = []
    logs: dict[str, Path] = {}
    try:
        for n in names:
            client = next(ports)
            logs[n] = tmp_path / f"{n}.log"
            with logs[n].open("wb") as out:
                procs.append(subprocess.Popen(
                    ["etcd", "--logger", "zap", "--log-outputs", "stderr", "--name", n,
                     "--data-dir", str(tmp_path / n),
                     "--listen-client-urls", f"http://127.0.0.1:{client}",
                     "--advertise-client-urls", f"http://127.0.0.1:{client}",
                     "--listen-peer-urls", f"http://127.0.0.1:{peer[n]}",
                     "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer[n]}",
                     "--initial-cluster", initial],
                    stdout=subprocess.DEVNULL, stderr=out))
        yield logs
    finally:
        # SIGKILL: a clean stop makes the leader wait for transfers; only the logs matter.
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait(timeout=10)


def test_real_etcd_cluster_log_passes(etcd_cluster: dict[str, Path]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if sum("elected leader" in p.read_text() for p in etcd_cluster.values()) == 3:
            break
        time.sleep(0.2)
    else:
        pytest.fail("etcd cluster elected no leader within 15 s")
    events = read_etcd_logs(etcd_cluster)
    result = check(events)
    assert result.valid is True, result.details["violations"]
    leaders = {e["node"] for evs in events.values() for e in evs if e.get("role") == "leader"}
    claimed = {e["lead"] for evs in events.values() for e in evs if e.get("lead")}
    assert len(leaders) == 1 and claimed == leaders
