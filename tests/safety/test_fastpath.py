"""check_run's column path (nodefile, merge; serial and parallel) gives exactly check()'s result
on the same events, and the same errors for broken files."""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkers.safety import EventLogError, check, check_run, read_events
from checkers.safety import nodefile as nodefile_module
from checkers.safety.nodefile import NotColumnar, scan_node_file
from tests.support.safety_events import Run, healthy
from tests.support.safety_scenarios import PASSING, VIOLATING
from tests.support.safety_sim import NODES, Sim, episodes

FALLBACK = "reading node events as dicts instead"


def node_line(ev: dict[str, Any]) -> str:
    """A line as raftkv writes it (compact separators): the form the column path reads."""
    return json.dumps(ev, separators=(",", ":")) + "\n"


def spaced_line(ev: dict[str, Any]) -> str:
    """The same event in another spacing: left to the JSON parser."""
    return json.dumps(ev) + "\n"


def write_run(root: Path, events: dict[str, list[dict[str, Any]]],
              form: Callable[[int, dict[str, Any]], str] = lambda i, ev: node_line(ev)) -> Path:
    for node, evs in events.items():
        d = root / "nodes" / node
        d.mkdir(parents=True)
        (d / "events.jsonl").write_text("".join(form(i, ev) for i, ev in enumerate(evs)))
    return root


def comparable(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = result.to_json()
    doc["stats"].pop("check_seconds")
    return doc


def assert_same_as_check(run_dir: Path, events: dict[str, list[dict[str, Any]]],
                         caplog: pytest.LogCaptureFixture, workers: int = 1) -> None:
    expected = comparable(check(events))
    with caplog.at_level(logging.INFO, logger="checkers.safety"):
        got = comparable(check_run(run_dir, workers=workers))
    assert FALLBACK not in caplog.text
    assert got == expected


SCENARIOS = [(name, scenario) for name, scenario in PASSING] + [
    (name, scenario) for name, scenario, _kinds in VIOLATING]


@pytest.mark.parametrize("name,scenario", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_every_invariant_scenario_gives_check_result(
        name: str, scenario: Callable[[Run], None], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    run = healthy()
    scenario(run)
    assert_same_as_check(write_run(tmp_path, run.events), run.events, caplog)


def test_mixed_line_forms_and_tiny_blocks(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Template and non-template applies interleaved, blocks cut every few lines."""
    monkeypatch.setattr(nodefile_module, "BLOCK_BYTES", 300)
    run = healthy()
    for i in range(9, 80):
        run.apply("n1", i, 2, data="a")
        run.apply("n2", i, 2, data="b" if i % 7 == 0 else None)
    run.boot("n3", term=2, vote="n2", commit=8)
    run.replay("n3", 1, 5)
    run.apply("n3", 9, 2)  # a jump in a replay
    rnd = random.Random(7)
    run_dir = write_run(tmp_path, run.events,
                        lambda i, ev: node_line(ev) if rnd.random() < 0.6 else spaced_line(ev))
    assert_same_as_check(run_dir, run.events, caplog)


def test_divergence_past_the_cap_and_leader_completeness(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = healthy()
    run.elect("n3", 3)
    for i in range(9, 300):
        run.apply("n1", i, 3, data="a")
        run.apply("n2", i, 3, data="b")
        run.apply("n3", i, 3, data="a" if i % 3 else "c")
    run.elect("n2", 4)
    run.replicate(300, 310, 4)
    result = check(run.events)
    assert result.details["stats"]["violations_suppressed"]
    assert_same_as_check(write_run(tmp_path, run.events), run.events, caplog)


def test_parallel_gives_serial_result(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = healthy(("n1", "n2", "n3", "n4"))
    run.role("n3", "candidate", 2)
    run.role("n3", "leader", 2, "n3")
    for i in range(9, 60):
        for n in ("n1", "n2", "n3", "n4"):
            run.apply(n, i, 2, data="x" if n != "n4" or i < 40 else "y")
    run_dir = write_run(tmp_path, run.events)
    serial = comparable(check_run(run_dir, workers=1))
    assert_same_as_check(run_dir, run.events, caplog, workers=3)
    assert comparable(check_run(run_dir, workers=3)) == serial
    assert serial["valid"] is False


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=episodes, i=st.integers(0, 2), fault=st.integers(0, 3))
def test_random_runs_with_a_fault_give_check_result(
        plan: list[tuple[str, int, int]], i: int, fault: int, tmp_path_factory: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    sim = Sim()
    sim.play(plan)
    sim.write(1)
    node = NODES[i]
    if fault == 0:
        sim.run.apply(node, sim.last + 1, sim.term, data="only-here")
        sim.run.apply(NODES[(i + 1) % 3], sim.last + 1, sim.term, data="elsewhere")
    elif fault == 1:
        sim.run.apply(node, sim.last + 3, sim.term)  # skips an index
    elif fault == 2:
        sim.run.role(node, "leader", sim.term, node)
    else:
        sim.run.commit(node, 0, sim.term)  # commit goes back
    run_dir = write_run(tmp_path_factory.mktemp("run"), sim.run.events)
    assert_same_as_check(run_dir, sim.run.events, caplog)


def test_corrupt_line_gives_the_readers_error(tmp_path: Path) -> None:
    run = healthy()
    run_dir = write_run(tmp_path, run.events)
    path = run_dir / "nodes" / "n2" / "events.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[9] = lines[9][:40] + "\n"  # an apply cut short, not at the end of the file
    path.write_text("".join(lines))
    with pytest.raises(EventLogError) as reader:
        read_events(run_dir)
    with pytest.raises(EventLogError) as column_path:
        scan_node_file("n2", path)
    with pytest.raises(EventLogError) as checked:
        check_run(run_dir)
    assert str(checked.value) == str(reader.value) == str(column_path.value)
    assert str(checked.value).endswith(lines[9][:40]) and "n2/events.jsonl:10:" in str(
        checked.value)
    assert "\n" not in str(checked.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_torn_tail_and_torn_restart_are_tolerated(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, workers: int) -> None:
    run = healthy()
    torn = '{"ts":1700000001.5,"node":"n3","boot":1,"type":"app'
    boot = run.boot("n3", term=2, vote="n2", commit=8)
    run.replay("n3", 1, 8)
    before = run.events["n3"][:run.events["n3"].index(boot)]
    after = run.events["n3"][len(before):]
    run_dir = write_run(tmp_path, run.events)
    path = run_dir / "nodes" / "n3" / "events.jsonl"
    path.write_text("".join(map(node_line, before)) + torn + "\n"
                    + "".join(map(node_line, after)) + torn)
    caplog.set_level(logging.WARNING)
    assert_same_as_check(run_dir, run.events, caplog, workers=workers)
    assert "torn line of a killed boot" in caplog.text
    assert "ignoring torn last line" in caplog.text


def test_apply_outside_the_contract_falls_back_to_dicts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = healthy()
    run.events["n1"][-1]["digest"] = "not-hex"
    run_dir = write_run(tmp_path, run.events)
    with pytest.raises(NotColumnar):
        scan_node_file("n1", run_dir / "nodes" / "n1" / "events.jsonl")
    with caplog.at_level(logging.INFO, logger="checkers.safety"):
        got = comparable(check_run(run_dir))
    assert FALLBACK in caplog.text
    assert got == comparable(check(run.events))
    assert got["valid"] is False  # differs from the other nodes' digest at that index


def test_no_node_files_is_unknown(tmp_path: Path) -> None:
    assert check_run(tmp_path, workers=2).valid == "unknown"


def test_sparse_indexes_and_snapshot_terms(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Indexes far apart take the sorted first-apply table; a snapshot whose term differs
    from the entry applied at its index is found through it."""
    run = healthy()
    big = 10**12
    for i in range(3):
        run.apply("n1", big + i, 2, data="a")
        run.apply("n2", big + i, 2, data="b")
    run.snapshot("n3", 7, 1, source="local")  # entry 7 was applied in term 2
    kinds = {v["kind"] for v in check(run.events).details["violations"]}
    assert kinds == {"apply-order", "state-machine-safety"}
    assert_same_as_check(write_run(tmp_path, run.events), run.events, caplog)


def test_dense_first_apply_table_with_snapshot_terms(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = healthy()
    run.snapshot("n3", 7, 1, source="local")
    run.snapshot("n2", 99, 1, source="local")  # beyond every applied index
    assert_same_as_check(write_run(tmp_path, run.events), run.events, caplog)


def test_default_workers_read_small_runs_in_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small run is read in this process; past SERIAL_BELOW_BYTES, by worker processes."""
    from checkers.safety import parallel

    def no_pool(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker pool started")

    run = healthy()
    run_dir = write_run(tmp_path, run.events)
    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pool)
    assert check_run(run_dir).valid is True
    monkeypatch.setattr(parallel, "SERIAL_BELOW_BYTES", 0)
    with pytest.raises(RuntimeError, match="worker pool started"):
        check_run(run_dir)


def _dies_in_a_worker(node: str, path: Path, altered: tuple[float, ...] = ()) -> Any:
    if os.getpid() != int(os.environ["SAFETY_TEST_PARENT_PID"]):
        os._exit(3)  # a worker killed mid-task
    return scan_node_file(node, path, altered)


def test_a_dead_worker_falls_back_to_this_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from checkers.safety import parallel

    monkeypatch.setenv("SAFETY_TEST_PARENT_PID", str(os.getpid()))
    monkeypatch.setattr(parallel, "scan_node_file", _dies_in_a_worker)
    run = healthy()
    run.role("n3", "leader", 2, "n3")
    run_dir = write_run(tmp_path, run.events)
    with caplog.at_level(logging.WARNING):
        got = comparable(check_run(run_dir, workers=2))
    assert got == comparable(check(run.events)) and got["valid"] is False
    assert "worker processes failed" in caplog.text


@pytest.mark.parametrize("last", ["apply", "role"])
def test_last_line_without_newline_is_an_event(tmp_path: Path, last: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    run = healthy()
    if last == "role":
        run.role("n2", "follower", 2, "n2")
    run_dir = write_run(tmp_path, run.events)
    path = run_dir / "nodes" / "n2" / "events.jsonl"
    path.write_text(path.read_text().rstrip("\n"))
    assert read_events(run_dir) == run.events
    assert_same_as_check(run_dir, run.events, caplog)
    assert "torn" not in caplog.text
