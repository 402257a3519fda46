"""nats-server 2.9's Raft debug lines read as node events per Raft group, and judged.

testdata/nats-n*.log are the Raft and boot lines of a real 3-server run (Debian's nats-server
2.9.10, log workload, leader kills, a leader transfer, a server removed and re-added wiped),
other lines trimmed."""

from __future__ import annotations

from pathlib import Path

from checkers.safety.nats_log import META, check_nats_logs, judge, read_nats_logs

DATA = Path(__file__).parent / "testdata"
NODES = ("n1", "n2", "n3")


def recorded(tmp_path: Path | None = None, extra: dict[str, list[str]] | None = None) -> dict[str, Path]:
    paths = {n: DATA / f"nats-{n}.log" for n in NODES}
    if not extra:
        return paths
    assert tmp_path is not None
    out = {}
    for n, p in paths.items():
        q = tmp_path / f"{n}.log"
        q.write_text(p.read_text() + "".join(line + "\n" for line in extra.get(n, [])))
        out[n] = q
    return out


def raft(node_id: str, group: str, msg: str, ts: str = "22:18:30.000000") -> str:
    return f"[1] 2026/12/06 {ts} [DBG] RAFT [{node_id} - {group}] {msg}"


def test_recorded_run_gives_events_per_group_and_is_valid() -> None:
    logs = read_nats_logs(recorded())
    assert logs.peers == {"fjFyEjc1": "n1", "44jzkV9D": "n2", "BXScrY9i": "n3"}
    streams = set(logs.streams.values())
    assert streams == {"$G > KV_fl", "$G > FL_LOG"}
    assert META in logs.groups and len(logs.groups) == 3
    leaders = [(g, e["node"], e["term"]) for g, by in logs.groups.items() for evs in by.values()
               for e in evs if e["type"] == "role" and e["role"] == "leader"]
    assert len(leaders) == 8
    # votes name servers, not peer ids
    votes = {e["for"] for by in logs.groups.values() for evs in by.values() for e in evs if e["type"] == "vote"}
    assert votes <= set(NODES)
    # n1 was re-added with a wiped store: its meta events open a new incarnation (boot 1 again)
    meta_n1 = logs.groups[META]["n1"]
    assert [e["boot"] for e in meta_n1 if e["type"] == "boot"] == [1, 1]
    res = judge(logs)
    assert res.valid is True, res.details["violations"]
    assert res.details["stats"]["terms_with_leader"] == 8
    assert res.details["groups"][META]["valid"] is True


def test_forged_second_leader_in_one_term_is_flagged(tmp_path: Path) -> None:
    logs = read_nats_logs(recorded())
    group, node, term = next((g, e["node"], e["term"]) for g, by in logs.groups.items() if g != META
                             for evs in by.values() for e in evs if e["type"] == "role" and e["role"] == "leader")
    other = next(n for n in NODES if n != node)
    other_id = {v: k for k, v in logs.peers.items()}[other]
    forged = {other: [
        raft(other_id, group, f"Sending out voteRequest {{term:{term} lastTerm:0 lastIndex:0 candidate:{other_id} reply:}}"),
        raft(other_id, group, "Switching to leader"),
    ]}
    res = check_nats_logs(recorded(tmp_path, forged))
    assert res.valid is False
    kinds = {v["kind"] for v in res.details["violations"]}
    assert "election-safety" in kinds
    msg = next(v["message"] for v in res.details["violations"] if v["kind"] == "election-safety")
    assert group in msg and node in msg and other in msg and f"term {term}" in msg


def test_forged_second_vote_in_one_term_is_flagged(tmp_path: Path) -> None:
    """A vote for n2 and then for n3 in one term, by n1 in one boot."""
    term = 99
    lines = [
        raft("fjFyEjc1", META, f"Received a voteRequest &{{term:{term} lastTerm:9 lastIndex:9 candidate:44jzkV9D reply:$NRG.R.a}}"),
        raft("fjFyEjc1", META, f'Sending a voteResponse &{{term:{term - 1} peer:fjFyEjc1 granted:true}} -> "$NRG.R.a"'),
        raft("fjFyEjc1", META, f"Received a voteRequest &{{term:{term} lastTerm:9 lastIndex:9 candidate:BXScrY9i reply:$NRG.R.b}}"),
        raft("fjFyEjc1", META, f'Sending a voteResponse &{{term:{term} peer:fjFyEjc1 granted:true}} -> "$NRG.R.b"'),
    ]
    res = check_nats_logs(recorded(tmp_path, {"n1": lines}))
    assert res.valid is False
    v = next(v for v in res.details["violations"] if v["kind"] == "one-vote-per-term")
    assert "n1 voted for n2" in v["message"] and "n3" in v["message"] and f"term {term}" in v["message"]


def test_denied_vote_is_not_a_vote(tmp_path: Path) -> None:
    lines = [
        raft("fjFyEjc1", META, "Received a voteRequest &{term:99 lastTerm:9 lastIndex:9 candidate:44jzkV9D reply:$NRG.R.a}"),
        raft("fjFyEjc1", META, 'Sending a voteResponse &{term:98 peer:fjFyEjc1 granted:true} -> "$NRG.R.a"'),
        raft("fjFyEjc1", META, "Received a voteRequest &{term:99 lastTerm:9 lastIndex:9 candidate:BXScrY9i reply:$NRG.R.b}"),
        raft("fjFyEjc1", META, 'Sending a voteResponse &{term:99 peer:fjFyEjc1 granted:false} -> "$NRG.R.b"'),
    ]
    assert check_nats_logs(recorded(tmp_path, {"n1": lines})).valid is True


def test_leader_whose_term_the_log_does_not_show_is_not_guessed(tmp_path: Path) -> None:
    """An append entry reaching a candidate may raise its term silently: the leader line after
    it is counted as unattributed, and no leader event is made up for it."""
    lines = [
        raft("44jzkV9D", META, "Sending out voteRequest {term:50 lastTerm:9 lastIndex:9 candidate:44jzkV9D reply:}"),
        raft("44jzkV9D", META, 'Received append entry in candidate state from "fjFyEjc1", converting to follower'),
        raft("44jzkV9D", META, "Switching to leader"),
    ]
    logs = read_nats_logs(recorded(tmp_path, {"n2": lines}))
    assert logs.unattributed == {META: 1}
    n2 = logs.groups[META]["n2"]
    assert not any(e["type"] == "role" and e["role"] == "leader" and e["term"] >= 50 for e in n2)
    res = judge(logs)
    assert res.valid is True
    assert res.details["stats"]["unattributed_leader_lines"] == 1


def test_candidacy_in_a_lower_term_is_a_monotonicity_violation(tmp_path: Path) -> None:
    """A node that campaigns in a term below one it has already been in (raft.go can lower
    a node's term on an append entry mismatch) is judged when the lower term shows."""
    logs = read_nats_logs(recorded())
    group, node, term = max(((g, e["node"], e["term"]) for g, by in logs.groups.items()
                             for evs in by.values() for e in evs if e["type"] == "role"),
                            key=lambda x: x[2])
    assert term > 2
    node_id = {v: k for k, v in logs.peers.items()}[node]
    lines = [raft(node_id, group, f"Sending out voteRequest {{term:{term - 1} lastTerm:0 lastIndex:0 candidate:{node_id} reply:}}")]
    res = check_nats_logs(recorded(tmp_path, {node: lines}))
    assert res.valid is False
    v = next(v for v in res.details["violations"] if v["kind"] == "monotonicity")
    assert node in v["message"] and f"from {term} to {term - 1}" in v["message"]


def test_unreadable_log_is_one_line_naming_it(tmp_path: Path) -> None:
    import pytest

    from checkers.safety.nats_log import NatsLogError

    with pytest.raises(NatsLogError, match="missing.log"):
        read_nats_logs({"n1": tmp_path / "missing.log"})


def test_no_raft_lines_is_unknown(tmp_path: Path) -> None:
    p = tmp_path / "quiet.log"
    p.write_text("[1] 2026/12/06 22:18:30.000000 [INF] Server is ready\n")
    res = check_nats_logs({"n1": p})
    assert res.valid == "unknown"
    assert "debug logging" in res.details["stats"]["message"]
