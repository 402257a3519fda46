"""Hand-made histories for the edge cases of Jepsen semantics and of the search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from checkers.history import pair
from checkers.linear import (
    UNKNOWN,
    CasRegister,
    Input,
    Model,
    MultiRegister,
    Mutex,
    SetModel,
    State,
    check,
    make_model,
)
from tests.support.histories import history, op

KV = make_model("kv")


@pytest.mark.parametrize(
    "read_start, expected",
    [(10, True), (11, False)],  # invoked exactly when the write returned: concurrent
)
def test_equal_timestamps_count_as_concurrent(read_start: int, expected: bool) -> None:
    h = history(op(1, "write", 1, 0, 10), op(2, "read", None, read_start, 20, out=None))
    assert check(KV, h).valid is expected


def test_info_write_must_be_placed_to_explain_a_read() -> None:
    h = history(op(1, "write", 1, 0, 5, result="info"), op(2, "read", None, 10, 20, out=1))
    assert check(KV, h).valid is True
    assert h[0].type == "info" and h[0].output is UNKNOWN


def test_info_write_that_never_completes_may_never_happen() -> None:
    h = history(op(1, "write", 1, 0, None), op(2, "read", None, 10, 20, out=None))
    assert check(KV, h).valid is True


def test_info_write_cannot_be_undone() -> None:
    h = history(
        op(1, "write", 1, 0, 2),
        op(2, "write", 2, 3, 5, result="info"),
        op(3, "read", None, 10, 11, out=2),
        op(4, "read", None, 12, 13, out=1),
    )
    assert check(KV, h).valid is False


def test_read_of_a_value_never_written() -> None:
    h = history(op(1, "write", 1, 0, 10), op(2, "read", None, 20, 30, out=7))
    result = check(KV, h)
    assert result.valid is False
    ce = result.counterexample
    assert ce is not None
    assert ce["unplaceable"][0] == 1  # the read
    assert ce["longest"] == [[0]] and ce["states"] == [[1]]
    assert {o["id"] for o in ce["ops"]} == {0, 1}
    assert set(ce) == {"key", "ops", "longest", "states", "unplaceable", "message"}
    assert set(ce["ops"][0]) == {"id", "process", "f", "value", "output", "invoke", "complete", "type"}


def test_failed_cas_is_dropped_under_jepsen_semantics() -> None:
    h = history(op(1, "write", 1, 0, 1), op(2, "cas", [1, 2], 2, 3, result="fail"),
                op(3, "read", None, 4, 5, out=1))
    assert check(KV, h).valid is True


def test_failed_cas_is_an_observation_in_porcupine_etcd_logs() -> None:
    records = [
        {"process": 1, "type": "invoke", "f": "write", "value": 1},
        {"process": 1, "type": "ok", "f": "write", "value": 1},
        {"process": 2, "type": "invoke", "f": "cas", "value": [1, 2]},
        {"process": 2, "type": "fail", "f": "cas", "value": [1, 2]},
    ]
    model = make_model("cas-register(initial=nil)")
    assert check(model, pair(records, failed_cas_observed=True)).valid is False
    records[2]["value"] = records[3]["value"] = [3, 2]
    assert check(model, pair(records, failed_cas_observed=True)).valid is True


def test_cas_ok_must_match() -> None:
    h = history(op(1, "write", 1, 0, 1), op(2, "cas", [2, 3], 2, 3))
    assert check(KV, h).valid is False
    h = history(op(1, "write", 1, 0, 1), op(2, "cas", [1, 3], 2, 3), op(3, "read", None, 4, 5, out=3))
    assert check(KV, h).valid is True


def test_delete_makes_the_key_missing() -> None:
    h = history(op(1, "write", 1, 0, 1), op(1, "delete", None, 2, 3), op(2, "read", None, 4, 5, out=None))
    assert check(KV, h).valid is True
    h = history(op(1, "write", 1, 0, 1), op(1, "delete", None, 2, 3), op(2, "read", None, 4, 5, out=1))
    assert check(KV, h).valid is False


def test_keys_are_checked_separately_and_named_in_the_evidence() -> None:
    h = history(
        op(1, "write", 1, 0, 1, key="a"), op(2, "read", None, 2, 3, out=1, key="a"),
        op(3, "write", 5, 0, 1, key="b"), op(4, "read", None, 2, 3, out=6, key="b"),
    )
    result = check(KV, h, stop_early=False)
    assert result.valid is False
    assert {p.key: p.valid for p in result.partitions} == {"a": True, "b": False}
    assert result.counterexample is not None and result.counterexample["key"] == "b"
    doc = result.to_json()
    assert doc["partitions"][1] == {"key": "b", "valid": False, "ops": 2}


def test_knossos_nil_read_is_always_legal_for_a_register_with_an_initial_value() -> None:
    h = history(op(1, "write", 3, 0, 1), op(2, "read", None, 2, 3, out=None))
    assert check(make_model("cas-register(initial=0)"), h).valid is True
    assert check(make_model("cas-register(initial=nil)"), h).valid is False


def _crowd(n: int, bad_read: bool) -> list[Any]:
    """n fully concurrent writes of distinct values, then a read: 2^n orders to refute."""
    ops = [op(p, "write", p, 0, 100 + p) for p in range(n)]
    return history(*ops, op(n, "read", None, 1000, 1001, out=999 if bad_read else 3))


def test_time_limit_gives_unknown() -> None:
    result = check(KV, _crowd(22, bad_read=True), timeout=0.2, shortcuts=False)
    assert result.valid == "unknown"
    assert result.partitions[0].reason == "time limit"


def test_configuration_budget_gives_unknown_not_out_of_memory() -> None:
    result = check(KV, _crowd(22, bad_read=True), max_configs=5000, shortcuts=False)
    assert result.valid == "unknown"


def test_distinct_writes_take_the_zone_shortcut() -> None:
    # 2^22 orders for the search; the zone test decides both at once
    assert check(KV, _crowd(22, bad_read=False), timeout=20).valid is True
    result = check(KV, _crowd(22, bad_read=True), timeout=20)
    assert result.valid is False
    assert result.counterexample is not None
    assert "no operation ever writes" in result.counterexample["message"]
    # reads of 3 then 4 after every write returned: both values would have to be current
    h = history(*[op(p, "write", p, 0, 100 + p) for p in range(22)],
                op(30, "read", None, 1000, 1001, out=3), op(31, "read", None, 1002, 1003, out=4))
    result = check(KV, h, timeout=20)
    assert result.valid is False
    assert result.counterexample is not None and "values 3" in result.counterexample["message"]


class Coin(Model):
    """Non-deterministic: `flip` lands on heads or tails; `look` observes it."""

    name = "coin"

    def init(self) -> State:
        return None

    def step(self, state: State, input: Input, output: Any) -> tuple[bool, State]:
        raise AssertionError("step_all is used for a non-deterministic model")

    def step_all(self, state: State, input: Input, output: Any) -> Sequence[State]:
        if input.f == "flip":
            return ("heads", "tails")
        return (state,) if state == output else ()


@pytest.mark.parametrize("seen, expected", [("tails", True), ("heads", True), ("edge", False)])
def test_non_deterministic_model(seen: str, expected: bool) -> None:
    h = history(op(1, "flip", None, 0, 1), op(2, "look", None, 2, 3, result="ok"))
    h[1].output = seen
    assert check(Coin(), h).valid is expected


def test_mutex() -> None:
    h = history(op(1, "acquire", None, 0, 1), op(2, "acquire", None, 2, 3))
    assert check(Mutex(), h).valid is False
    h = history(op(1, "acquire", None, 0, 1), op(1, "release", None, 2, 3), op(2, "acquire", None, 2, 4))
    assert check(Mutex(), h).valid is True


def test_set() -> None:
    h = history(op(1, "add", 1, 0, 1), op(2, "add", 2, 0, 5), op(3, "read", None, 2, 3, out=[1, 2]))
    assert check(SetModel(), h).valid is True
    h = history(op(1, "add", 1, 0, 1), op(3, "read", None, 2, 3, out=[2]))
    assert check(SetModel(), h).valid is False


def test_multi_register_txn() -> None:
    model = MultiRegister(x=0, y=0)
    w = op(1, "txn", [["write", "x", 1], ["write", "y", 1]], 0, 1)
    r = op(2, "txn", [["read", "x", None], ["read", "y", None]], 2, 3)
    r[1]["value"] = [["read", "x", 1], ["read", "y", 0]]
    assert check(model, history(w, r)).valid is False
    r[1]["value"] = [["read", "x", 1], ["read", "y", 1]]
    assert check(model, history(w, r)).valid is True


def test_model_names_parse() -> None:
    assert isinstance(make_model("cas-register(initial=nil)"), CasRegister)
    assert make_model("cas-register(initial=0)").init() == 0
    assert make_model('kv(get/put/append per key, initial "")').init() == ""
    assert make_model("multi-register(x=0,y=0)").init() == (("x", 0), ("y", 0))
    with pytest.raises(ValueError, match="unknown"):
        make_model("no-such-model")
    with pytest.raises(ValueError, match="k=v"):
        make_model("cas-register(0)")


def test_harness_checker_reports_a_check_result(tmp_path: Any) -> None:
    from checkers.linear.checker import LinearizabilityChecker
    from checkers.rundata import StoredRun

    records = [
        {"time": 1, "process": 0, "type": "invoke", "f": "write", "key": "a", "value": 1},
        {"time": 2, "process": "nemesis", "type": "info", "f": "start-partition", "value": None},
        {"time": 3, "process": 0, "type": "ok", "f": "write", "key": "a", "value": 1},
        {"time": 4, "process": 1, "type": "invoke", "f": "read", "key": "a", "value": None},
        {"time": 5, "process": 1, "type": "ok", "f": "read", "key": "a", "value": 2},
    ]
    result = LinearizabilityChecker("kv").check(StoredRun.of_records(records, tmp_path))
    assert result.name == "linearizability" and result.valid is False
    doc = result.to_json()
    assert doc["model"] == "kv" and doc["partitions"] == [{"key": "a", "valid": False, "ops": 2}]
    assert doc["counterexample"]["unplaceable"] == [1]
    records[-1]["value"] = 1
    assert LinearizabilityChecker("kv").check(StoredRun.of_records(records, tmp_path)).valid is True
