"""The lost-writes checker on small histories: what is lost (named per key), what is not
(unknown outcomes, concurrent writes, deletes), and when it cannot tell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checkers.lost import LostWritesChecker, check_records
from checkers.rundata import StoredRun


class H:
    """A history builder: each op is invoked at `t` and completed at `t + d` (ns)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.p = 0

    def op(self, f: str, value: Any, t: int, d: int = 1, outcome: str = "ok", key: str | None = "k",
           out: Any = None, final: bool = False, node: str = "n1") -> H:
        self.p += 1
        inv: dict[str, Any] = {"process": self.p, "type": "invoke", "f": f, "value": value, "time": t, "node": node}
        if key is not None:
            inv["key"] = key
        if final:
            inv["final"] = True
        self.records.append(inv)
        if outcome != "open":
            done = {**inv, "type": outcome, "time": t + d}
            if f == "read":
                done["value"] = out if outcome == "ok" else None
            self.records.append(done)
        return self

    def writes(self, values: range, t0: int = 0, key: str = "k") -> H:
        for i, v in enumerate(values):
            self.op("write", v, t0 + 10 * i, key=key)
        return self

    def final(self, seen: Any, key: str | None = "k", node: str = "n1", outcome: str = "ok") -> H:
        return self.op("read", None, 10_000, outcome=outcome, key=key, out=seen, final=True, node=node)


def verdict(h: H) -> tuple[Any, dict[str, Any]]:
    r = check_records(h.records)
    return r.valid, r.details


def test_every_acknowledged_write_present() -> None:
    valid, d = verdict(H().writes(range(1, 6)).final(5).final(5, node="n2"))
    assert valid is True and d["stats"]["keys_judged"] == 1 and d["lost"] == []


def test_planted_loss_names_the_lost_writes() -> None:
    valid, d = verdict(H().writes(range(1, 6)).final(3, node="n2"))
    assert valid is False
    (loss,) = d["lost"]
    assert (loss["key"], loss["node"], loss["read"], loss["lost"], loss["last_acked"]) == ("k", "n2", 3, [4, 5], 5)
    assert [o["acked"] for o in loss["lost_ops"]] == [31, 41]  # completion times, for the report
    assert d["message"] == "2 acknowledged write(s) lost: k: 4, 5 (final read 3 on n2)"


def test_one_loss_seen_by_every_node_is_counted_once() -> None:
    h = H().writes(range(1, 3)).op("delete", None, 100).final(2, node="n1").final(2, node="n2")
    valid, d = verdict(h)
    assert valid is False and d["stats"]["lost_writes"] == 1 and len(d["lost"]) == 2
    assert d["message"] == "1 acknowledged write(s) lost: k: delete (final read 2 on n1, n2)"


def test_a_key_back_to_its_initial_state_lost_everything() -> None:
    valid, d = verdict(H().writes(range(1, 4)).final(None))
    assert valid is False and d["lost"][0]["lost"] == [1, 2, 3]


def test_unknown_outcomes_never_make_anything_lost() -> None:
    h = H().writes(range(1, 4)).op("write", 9, 100, outcome="info").op("write", 10, 110, outcome="open")
    assert verdict(H().writes(range(1, 4)).op("write", 9, 5, outcome="info").final(9))[0] is True
    assert verdict(h.final(10))[0] is True
    # an info write that the read did not see changes nothing about the acknowledged ones
    assert verdict(H().writes(range(1, 4)).op("write", 9, 100, outcome="info").final(3))[0] is True


def test_concurrent_writes_may_land_in_either_order() -> None:
    h = H().op("write", 1, 0, d=50).op("write", 2, 10, d=5)  # 2 acked inside 1's interval
    assert verdict(h.final(1))[0] is True
    h = H().op("write", 1, 0, d=5).op("write", 2, 10, d=5)  # strictly after: 2 must win
    assert verdict(h.final(1))[1]["lost"][0]["lost"] == [2]


def test_failed_writes_and_cas_and_deletes() -> None:
    h = H().op("write", 1, 0).op("cas", [1, 2], 10).op("cas", [7, 3], 20, outcome="fail")
    assert verdict(h.final(2))[0] is True
    assert verdict(H().op("write", 1, 0).op("cas", [1, 2], 10).final(1))[1]["lost"][0]["lost"] == [2]
    assert verdict(H().op("write", 1, 0).op("delete", None, 10).final(None))[0] is True
    assert verdict(H().op("delete", None, 0).op("write", 1, 10).final(None))[1]["lost"][0]["lost"] == [1]


def test_a_value_nobody_wrote() -> None:
    valid, d = verdict(H().writes(range(1, 3)).final(99))
    assert valid is False and d["unexpected"][0]["read"] == 99 and d["lost"] == []


def test_cannot_tell_without_final_reads() -> None:
    valid, d = verdict(H().writes(range(1, 3)))
    assert valid == "unknown" and d["message"] == "no final reads in the history"
    valid, d = verdict(H().writes(range(1, 3)).final(None, outcome="fail"))
    assert valid == "unknown" and d["unread"] == ["k"]


def test_keys_are_judged_apart_and_unkeyed_registers_work() -> None:
    h = H().writes(range(1, 4), key="a").writes(range(1, 4), key="b").final(3, key="a").final(2, key="b")
    valid, d = verdict(h)
    assert valid is False and [x["key"] for x in d["lost"]] == ["b"]
    assert d["stats"]["keys_judged"] == 2 and d["stats"]["keys_with_lost_writes"] == 1
    h = H()
    for i in range(3):
        h.op("write", i + 1, 10 * i, key=None)
    assert verdict(h.final(1, key=None))[1]["lost"][0]["lost"] == [2, 3]


def test_reads_during_the_run_are_not_final() -> None:
    h = H().writes(range(1, 4)).op("read", None, 200, out=1)
    assert verdict(h)[0] == "unknown"


def test_as_a_checker_of_a_stored_run(tmp_path: Path) -> None:
    h = H().writes(range(1, 4)).final(2)
    r = LostWritesChecker().check(StoredRun.of_records(h.records, tmp_path))
    assert r.name == "lost-writes" and r.valid is False


@pytest.mark.parametrize("name", ["power-loss-valid.jsonl"])
def test_a_recorded_history_and_a_planted_loss(name: str) -> None:
    """A real run's history (raftkv under coordinated power losses, valid); then the same
    history with one final read changed to an older value: the writes after it are named."""
    from checkers.history import read_jsonl

    records = read_jsonl(Path(__file__).parent / "testdata" / name)
    r = check_records(records)
    assert r.valid is True, r.details["message"]
    assert r.details["stats"]["keys_judged"] >= 4
    # plant: the first final read of a key with at least two acked writes sees the older one
    by_key: dict[Any, list[Any]] = {}
    acked = {}
    for rec in records:
        if rec.get("type") == "invoke":
            acked[rec["process"]] = rec
        elif rec.get("type") == "ok" and rec.get("f") == "write":
            by_key.setdefault(rec.get("key"), []).append(rec["value"])
    key = next(k for k, vs in by_key.items() if len(vs) >= 2)
    read = next(rec for rec in records if rec.get("final") and rec.get("key") == key and rec["type"] == "ok")
    latest = read["value"]
    older = next(v for v in reversed(by_key[key]) if v != latest)
    read["value"] = older
    r = check_records(records)
    assert r.valid is False
    loss = next(x for x in r.details["lost"] if x["key"] == key)
    assert loss["read"] == older and latest in loss["lost"]
