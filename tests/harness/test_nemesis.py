"""The nemesis against an in-memory cluster (a test double): what it does, what it records,
and that the final heal undoes everything."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.nemesis.core import Nemesis, run_schedule
from harness.nemesis.schedule import FaultEvent
from harness.protocols import HarnessError
from harness.run.history import HistoryWriter, read_history

NODES = ["n1", "n2", "n3"]


class FakeProvider:
    name = "fake"
    supports_clock = True

    def __init__(self) -> None:
        self.grudge: dict[str, set[str]] = {}
        self.clocks: dict[str, tuple[float, float]] = {}

    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        self.grudge = {k: set(v) for k, v in grudge.items()}

    def heal(self) -> None:
        self.grudge = {}

    def set_clock(self, node: str, offset_s: float, rate: float = 1.0) -> None:
        self.clocks[node] = (offset_s, rate)


class FakeDB:
    name = "fake"

    def __init__(self) -> None:
        self.running = set(NODES)
        self.paused: set[str] = set()
        self.members = set(NODES)
        self.lead: str | None = "n1"
        self.log: list[tuple[str, str]] = []

    def leader(self) -> str | None:
        return self.lead

    def kill(self, node: str) -> None:
        self.running.discard(node)
        self.log.append(("kill", node))

    def start(self, node: str) -> None:
        self.running.add(node)
        self.log.append(("start", node))

    def pause(self, node: str) -> None:
        self.paused.add(node)

    def resume(self, node: str) -> None:
        self.paused.discard(node)

    def transfer_leader(self, to: str) -> None:
        self.lead = to

    def remove_member(self, node: str) -> None:
        self.members.discard(node)
        self.running.discard(node)

    def add_member(self, node: str) -> None:
        self.members.add(node)
        self.running.add(node)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Nemesis, FakeDB, FakeProvider, HistoryWriter]:
    db, prov = FakeDB(), FakeProvider()
    hist = HistoryWriter(tmp_path / "h.jsonl")
    return Nemesis(db, prov, NODES, hist), db, prov, hist  # type: ignore[arg-type]


def ev(fault: str, kind: str, seed: int = 1) -> FaultEvent:
    return FaultEvent(0.0, fault, kind, 0.1, seed)


def test_partition_leader_isolates_the_leader_and_heals(setup: Any) -> None:
    nem, db, prov, hist = setup
    nem.start(ev("partition", "leader"))
    assert prov.grudge["n1"] == {"n2", "n3"}
    assert nem.describe_active() == "partition(leader)"
    nem.stop()
    assert prov.grudge == {}
    hist.close()
    ops = read_history(hist.path)
    assert [o["f"] for o in ops] == ["start-partition", "stop-partition"]
    assert ops[0]["process"] == "nemesis" and ops[0]["value"]["groups"] == [["n1"], ["n2", "n3"]]


def test_kill_minority_restarts_on_stop(setup: Any) -> None:
    nem, db, prov, hist = setup
    nem.start(ev("kill", "minority"))
    assert len(db.running) == 2
    nem.stop()
    assert db.running == set(NODES)


def test_failed_fault_is_recorded_not_raised(setup: Any) -> None:
    nem, db, prov, hist = setup
    db.lead = None
    nem.start(ev("transfer", "transfer"))
    nem.stop()
    hist.close()
    ops = read_history(hist.path)
    assert ops[0]["f"] == "start-transfer" and ops[0]["error"] == "no leader to transfer from"


def test_heal_all_undoes_every_fault(setup: Any) -> None:
    nem, db, prov, hist = setup
    nem.start(ev("pause", "one", seed=3))
    assert db.paused
    # a fault left active plus state from earlier faults: heal_all must undo all of it
    nem.state.killed.add("n3")
    db.running.discard("n3")
    nem.state.clocked.add("n2")
    prov.clocks["n2"] = (5.0, 2.0)
    nem.state.removed.add("n2")
    db.members.discard("n2")
    prov.grudge = {"n1": {"n2"}}
    nem.heal_all()
    assert db.paused == set() and db.running == set(NODES) and db.members == set(NODES)
    assert prov.grudge == {} and prov.clocks["n2"] == (0.0, 1.0)
    hist.close()
    assert read_history(hist.path)[-1]["f"] == "heal"


def test_clock_refused_without_support(setup: Any) -> None:
    nem, db, prov, hist = setup
    prov.supports_clock = False
    nem.start(ev("clock", "jump"))
    hist.close()
    assert "not supported" in read_history(hist.path)[0]["error"]


def test_schedule_stops_promptly(setup: Any) -> None:
    nem, db, prov, hist = setup
    events = [FaultEvent(0.05 * i, "kill", "one", 0.03, i) for i in range(1000)]
    stop = threading.Event()
    t = threading.Thread(target=run_schedule, args=(nem, events, time.monotonic(), stop))
    t.start()
    time.sleep(0.3)
    stop.set()
    t.join(2)
    assert not t.is_alive()
    assert nem.active is None
    hist.close()
    lines = [json.loads(x) for x in hist.path.read_text().splitlines()]
    assert 2 <= len(lines) < 40
    with pytest.raises(HarnessError):
        nem.state.targets("bogus", None)
