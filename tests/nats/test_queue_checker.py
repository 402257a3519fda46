"""The log checker on a recorded history, and with lost, duplicated, reordered and failed
messages planted in it.

testdata/log-history.jsonl is a real run's history (3 NATS servers, log workload, leader kills,
a transfer, a removal), trimmed to the appends of values up to 400 and the matching messages of
each replica's copy."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from checkers import queue

DATA = Path(__file__).parent / "testdata"


def history() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / "log-history.jsonl").read_text().splitlines()]


def replica_reads(h: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {op["node"]: op for op in h if op.get("f") == "read-replica" and op["type"] == "ok"}


def outcomes(h: list[dict[str, Any]]) -> dict[int, str]:
    """{appended value: how its append completed}."""
    pending: dict[Any, int] = {}
    out = {}
    for op in h:
        if op.get("f") != "append":
            continue
        if op["type"] == "invoke":
            pending[op["process"]] = op["value"]
        else:
            out[pending.pop(op["process"])] = op["type"]
    return out


def acked(h: list[dict[str, Any]]) -> list[int]:
    return [v for v, t in outcomes(h).items() if t == "ok"]


def test_recorded_history_is_valid() -> None:
    res = queue.check(history())
    assert res.valid is True
    assert res.details["appends"]["ok"] == 355
    assert set(res.details["replicas"]) == {"n1", "n2", "n3"}


def test_planted_lost_message_is_named() -> None:
    h = history()
    victim = acked(h)[100]
    for op in replica_reads(h).values():
        op["value"] = [[s, v] for s, v in op["value"] if v != victim]
    res = queue.check(h)
    assert res.valid is False
    assert res.details["lost"] == [victim]
    assert f"1 lost: {victim}" in res.details["message"]


def test_planted_duplicate_is_named() -> None:
    h = history()
    reads = replica_reads(h)
    msgs = reads["n2"]["value"]
    dup = msgs[10][1]
    msgs.append([msgs[-1][0] + 1, dup])
    res = queue.check(h)
    assert res.valid is False
    assert res.details["duplicated"] == [{"value": dup, "node": "n2", "seqs": [msgs[10][0], msgs[-1][0]]}]
    # n2 now ends one sequence later than the others: they are behind, which is no anomaly
    assert res.details["behind"] == {"n1": 1, "n3": 1}
    assert "missing" not in res.details


def test_message_ordered_differently_on_one_replica_is_divergent() -> None:
    h = history()
    msgs = replica_reads(h)["n3"]["value"]
    (s1, a), (s2, b) = msgs[20], msgs[21]
    msgs[20], msgs[21] = [s1, b], [s2, a]
    res = queue.check(h)
    assert res.valid is False
    assert res.details["divergent"] == [
        {"seq": s1, "values": {"n1": a, "n2": a, "n3": b}},
        {"seq": s2, "values": {"n1": b, "n2": b, "n3": a}},
    ]


def test_hole_in_one_replica_is_missing_and_a_shorter_replica_is_only_behind() -> None:
    h = history()
    reads = replica_reads(h)
    hole = reads["n1"]["value"].pop(50)
    reads["n3"]["value"] = reads["n3"]["value"][:-5]
    res = queue.check(h)
    assert res.valid is False
    assert res.details["missing"] == [{"node": "n1", "seq": hole[0], "value": hole[1]}]
    assert res.details["behind"] == {"n3": 5}
    assert "lost" not in res.details


def test_failed_append_present_and_unknown_value_are_anomalies() -> None:
    h = history()
    value = next(v for v, t in outcomes(h).items() if t == "fail")
    for op in replica_reads(h).values():
        top = op["value"][-1][0]
        op["value"] += [[top + 1, value], [top + 2, 10_000]]
    res = queue.check(h)
    assert res.valid is False
    assert res.details["failed-present"] == [value]
    assert res.details["unexpected"] == [10_000]


def test_indeterminate_append_present_is_recovered_not_an_anomaly() -> None:
    h = history()
    n = max(op["index"] for op in h) + 1
    h += [{"index": n, "process": 77, "type": "invoke", "f": "append", "value": 9999},
          {"index": n + 1, "process": 77, "type": "info", "f": "append", "value": 9999, "error": "timeout"}]
    for op in replica_reads(h).values():
        op["value"].append([op["value"][-1][0] + 1, 9999])
    res = queue.check(h)
    assert res.valid is True
    assert res.details["recovered"] == 1


def test_without_replica_reads_the_verdict_is_unknown() -> None:
    h = [op for op in history() if op.get("f") != "read-replica"]
    res = queue.check(h)
    assert res.valid == "unknown"


def test_input_is_not_modified() -> None:
    h = history()
    before = copy.deepcopy(h)
    queue.check(h)
    assert h == before
