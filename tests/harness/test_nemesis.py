"""The nemesis against an in-memory cluster (a test double): what it does, what it records,
and that the final heal undoes everything."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from checkers.rundata import read_records
from harness.nemesis.core import Nemesis, run_schedule
from harness.nemesis.schedule import (
    FaultEvent,
    fault_schedule,
    lanes,
    read_schedule,
    write_schedule,
)
from harness.protocols import HarnessError
from harness.providers.clock import ClockOp
from harness.run.config import ConfigError, validate
from harness.run.history import HistoryWriter

NODES = ["n1", "n2", "n3"]


class FakeProvider:
    name = "fake"
    supports_clock = True

    def __init__(self) -> None:
        self.grudge: dict[str, set[str]] = {}
        self.clocks: dict[str, list[ClockOp]] = {}

    def partition(self, grudge: Mapping[str, set[str]]) -> None:
        self.grudge = {k: set(v) for k, v in grudge.items()}

    def heal(self) -> None:
        self.grudge = {}

    def change_clock(self, node: str, ops: Sequence[ClockOp]) -> None:
        self.clocks.setdefault(node, []).extend(ops)

    def clock_state(self, node: str) -> None:
        return None

    def collect_clock(self, node: str, dest: Path) -> None:
        pass


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
    ops = read_records(hist.path)
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
    ops = read_records(hist.path)
    assert ops[0]["f"] == "start-transfer" and ops[0]["error"] == "no leader to transfer from"


def test_heal_all_undoes_every_fault(setup: Any) -> None:
    nem, db, prov, hist = setup
    nem.start(ev("pause", "one", seed=3))
    assert db.paused
    # a fault left active plus state from earlier faults: heal_all must undo all of it
    nem.state.killed.add("n3")
    db.running.discard("n3")
    nem.start(FaultEvent(0.0, "clock", "rate", 5.0, 2))
    assert any(op.kind == "rate" and op.value != 1.0 for op in prov.clocks[nem.active[-1].undo["nodes"][0]])
    nem.state.removed.add("n2")
    db.members.discard("n2")
    prov.grudge = {"n1": {"n2"}}
    nem.heal_all()
    assert db.paused == set() and db.running == set(NODES) and db.members == set(NODES)
    assert prov.grudge == {} and all(prov.clocks[n][-1] == ClockOp("reset") for n in NODES)
    hist.close()
    assert read_records(hist.path)[-1]["f"] == "heal"


def test_clock_refused_without_support(setup: Any) -> None:
    nem, db, prov, hist = setup
    prov.supports_clock = False
    nem.start(ev("clock", "jump"))
    hist.close()
    assert "not supported" in read_records(hist.path)[0]["error"]


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
    assert nem.active == []
    hist.close()
    lines = [json.loads(x) for x in hist.path.read_text().splitlines()]
    assert 2 <= len(lines) < 40
    with pytest.raises(HarnessError):
        nem.state.targets("bogus", None)


# -- several faults at once ------------------------------------------------------------------

MIX: dict[str, Any] = {"faults": ["partition", "kill", "pause"], "schedule": "mix", "interval": 4.0, "duration": 3.0,
       "partitions": ["one"], "kills": ["one"], "pauses": ["one"]}


def overlaps(a: FaultEvent, b: FaultEvent) -> bool:
    return a.at < b.at + b.duration and b.at < a.at + a.duration


def test_mix_overlaps_families_never_one_family_and_keeps_the_quiet_end() -> None:
    events = fault_schedule({**MIX, "quiet": 10.0}, 7, 5.0, 120.0)
    assert events == fault_schedule({**MIX, "quiet": 10.0}, 7, 5.0, 120.0)
    assert events != fault_schedule({**MIX, "quiet": 10.0}, 8, 5.0, 120.0)
    assert {e.fault for e in events} == {"partition", "kill", "pause"}
    assert all(e.at + e.duration <= 110.0 + 1e-6 for e in events)
    by_family = {f: [e for e in events if e.fault == f] for f in MIX["faults"]}
    for evs in by_family.values():
        assert all(not overlaps(a, b) for a, b in zip(evs, evs[1:], strict=False))
    assert any(overlaps(a, b) for a in by_family["partition"] for b in by_family["kill"])
    # a family added later leaves the others' timelines where they were
    more = fault_schedule({**MIX, "quiet": 10.0, "faults": [*MIX["faults"], "transfer"]}, 7, 5.0, 120.0)
    assert [e for e in more if e.fault != "transfer"] == events
    assert {lane[0].fault: lane for lane in lanes(events)} == by_family


def test_quiet_end_for_one_at_a_time_schedules() -> None:
    nem = {"faults": ["kill"], "interval": 5.0, "duration": 4.0, "quiet": 12.0}
    events = fault_schedule(nem, 3, 5.0, 60.0)
    assert events and all(e.at + e.duration <= 48.0 + 1e-6 for e in events)
    assert fault_schedule({**nem, "quiet": 0.0}, 3, 5.0, 60.0)[: len(events) - 1] == events[:-1]


def test_overlapping_partitions_compose(setup: Any) -> None:
    nem, db, prov, hist = setup
    first = nem.start(FaultEvent(0.0, "partition", "one", 1.0, seed=1))
    one = {dst: set(srcs) for dst, srcs in prov.grudge.items()}
    second = nem.start(FaultEvent(0.0, "partition", "one", 1.0, seed=4))
    both = prov.grudge
    assert all(one[d] <= both.get(d, set()) for d in one), "the second partition must not heal the first"
    nem.stop(first)
    assert prov.grudge and nem.describe_active() == "partition(one)"
    nem.stop(second)
    assert prov.grudge == {}


def test_a_mix_plays_families_at_once(setup: Any) -> None:
    nem, db, prov, hist = setup
    events = [FaultEvent(0.0, "kill", "one", 0.3, 1), FaultEvent(0.1, "pause", "one", 0.6, 2),
              FaultEvent(0.4, "kill", "one", 0.1, 3)]
    run_schedule(nem, events, time.monotonic(), threading.Event())
    hist.close()
    fs = [o["f"] for o in read_records(hist.path)]
    assert fs == ["start-kill", "start-pause", "stop-kill", "start-kill", "stop-kill", "stop-pause"]
    assert nem.active == []


def test_exclusive_faults_are_refused_in_a_mix() -> None:
    with pytest.raises(ConfigError, match="figure-eight cannot be made real .* cannot overlap other faults"):
        validate({"nemesis": {"faults": ["figure-eight", "kill"], "schedule": "mix"}})


def test_schedule_file_round_trip_and_errors(tmp_path: Path) -> None:
    events = fault_schedule(MIX, 1, 5.0, 40.0)
    write_schedule(events, tmp_path / "schedule.json")
    assert read_schedule(tmp_path / "schedule.json") == events
    (tmp_path / "bad.json").write_text('{"events": [{"at": 1, "fault": "flood", "kind": "x", "duration": 1, "seed": 2}]}')
    with pytest.raises(ValueError, match=r"bad.json: event 0: unknown fault 'flood'"):
        read_schedule(tmp_path / "bad.json")
    (tmp_path / "torn.json").write_text('{"events": [')
    with pytest.raises(ValueError, match="torn.json: not a fault schedule"):
        read_schedule(tmp_path / "torn.json")
