"""checkers.stats: counts per f and type, latency quantiles from invoke/complete pairs."""

from __future__ import annotations

from typing import Any

import pytest

from checkers.rundata import HistoryFormatError
from checkers.stats import check

MS = 1_000_000


def op(time_ms: float, process: Any, type_: str, f: str, value: Any = None) -> dict[str, Any]:
    return {"time": int(time_ms * MS), "process": process, "type": type_, "f": f, "value": value}


def pair(start_ms: float, latency_ms: float, process: int, f: str, type_: str = "ok"
         ) -> list[dict[str, Any]]:
    return [op(start_ms, process, "invoke", f), op(start_ms + latency_ms, process, type_, f)]


def test_counts_latencies_and_throughput() -> None:
    history: list[dict[str, Any]] = []
    # 100 writes by process 0 with latencies 1..100 ms, back to back
    t = 0.0
    for i in range(1, 101):
        history += pair(t, i, 0, "write")
        t += i
    # reads by process 1 interleaved: 3 ok, 1 fail, 1 info
    for k, type_ in enumerate(["ok", "ok", "fail", "ok", "info"]):
        history += pair(k * 10.0, 5.0, 1 + k, "read", type_)
    history.append(op(50, "nemesis", "info", "start-partition"))
    history.append(op(60, "nemesis", "info", "stop-partition"))
    history.sort(key=lambda o: o["time"])
    result = check(history)
    assert result.name == "stats" and result.valid is True
    d = result.details
    assert d["ops"] == {"write": {"ok": 100, "fail": 0, "info": 0},
                        "read": {"ok": 3, "fail": 1, "info": 1}}
    w = d["latency_ms"]["write"]
    assert w["p50"] == pytest.approx(50.5)
    assert w["p95"] == pytest.approx(95.05)
    assert w["p99"] == pytest.approx(99.01)
    assert w["max"] == pytest.approx(100.0)
    assert d["latency_ms"]["read"] == {"p50": 5.0, "p95": 5.0, "p99": 5.0, "max": 5.0}
    assert d["duration_s"] == pytest.approx(5.05)
    assert d["throughput"] == pytest.approx(103 / 5.05, rel=1e-3)
    assert d["nemesis"] == {"start-partition": 1, "stop-partition": 1}


def test_pairs_by_process_when_interleaved() -> None:
    history = [
        op(0, 1, "invoke", "cas"), op(1, 2, "invoke", "read"),
        op(3, 2, "ok", "read"), op(10, 1, "fail", "cas"),
    ]
    d = check(history).details
    assert d["latency_ms"]["cas"]["max"] == pytest.approx(10.0)
    assert d["latency_ms"]["read"]["max"] == pytest.approx(2.0)


def test_unfinished_invokes_count_as_info() -> None:
    history = [op(0, 1, "invoke", "write"), op(1, 2, "invoke", "write"), op(2, 2, "ok", "write"),
               op(3, 1, "invoke", "read")]  # process 1 reused without completing: info
    d = check(history).details
    assert d["ops"]["write"] == {"ok": 1, "fail": 0, "info": 1}
    assert d["ops"]["read"] == {"ok": 0, "fail": 0, "info": 1}
    assert "read" not in d["latency_ms"]


def test_a_completion_without_invocation_is_counted_without_latency() -> None:
    history = [op(0, 1, "ok", "read"), *pair(1, 2, 2, "read"), op(9, 3, "fail", "write")]
    d = check(history).details
    assert d["ops"] == {"read": {"ok": 2, "fail": 0, "info": 0}, "write": {"ok": 0, "fail": 1, "info": 0}}
    assert d["latency_ms"] == {"read": {"p50": 2.0, "p95": 2.0, "p99": 2.0, "max": 2.0}}
    assert d["duration_s"] == pytest.approx(0.009)


def test_empty_history() -> None:
    result = check([])
    assert result.valid is True
    assert result.details["ops"] == {} and result.details["throughput"] == 0.0


@pytest.mark.parametrize("bad,match", [
    ({"time": 1, "process": 1, "type": "invoke"}, "lacks field 'f'"),
    ({"time": 1, "process": 1, "type": "weird", "f": "read"}, "unknown type 'weird'"),
])
def test_malformed_ops_are_one_line_errors(bad: dict[str, Any], match: str) -> None:
    with pytest.raises(HistoryFormatError, match=match):
        check([bad])
