"""The durability invariants across power losses and disk corruption, on synthetic events:
a boot's log must reach what earlier boots applied, a refused start on the node's own data is
data loss, and a disk the nemesis altered (a corrupt fault) voids what the node made durable
before. check() and check_run() (the columnar path) agree on each."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from checkers.safety import check, check_run
from tests.support.safety_events import Run, healthy

Scenario = Callable[[Run], dict[str, list[float]]]


def _log_reaches_applied(run: Run) -> dict[str, list[float]]:
    run.boot("n3", term=2, vote="n2", commit=8, last_index=8)
    return {}


def _old_boot_event_without_last_index(run: Run) -> dict[str, list[float]]:
    run.boot("n3", term=2, vote="n2", commit=8)
    return {}


def _log_shorter_than_applied(run: Run) -> dict[str, list[float]]:
    # ack-before-fsync: n3 applied 1..8, lost power, and its WAL reaches only 6
    run.boot("n3", term=2, vote="n2", commit=6, last_index=6)
    return {}


def _refused_after_power_loss(run: Run) -> dict[str, list[float]]:
    # snapshot-rename-before-fsync: the newest snapshot is empty after the power loss
    run.refuse("n3", "snap-0000000000000007.json: unreadable snapshot")
    run.refuse("n3", "snap-0000000000000007.json: unreadable snapshot")
    return {}


def _refused_after_corruption(run: Run) -> dict[str, list[float]]:
    at = run.ts + 0.0005  # the nemesis flipped bits in n3's WAL while it was down
    run.refuse("n3", "wal corrupt: checksum mismatch before the tail of the log")
    run.refuse("n3", "wal corrupt: checksum mismatch before the tail of the log")
    return {"n3": [at]}


def _truncated_wal_goes_back(run: Run) -> dict[str, list[float]]:
    # a truncated WAL tail reads as a torn write: n3 comes back with less, and votes again
    at = run.ts + 0.0005
    run.boot("n3", term=1, vote="n1", commit=3, last_index=3)
    run.role("n3", "follower", 2, "n2")
    run.vote("n3", 2, "n1")  # an earlier incarnation voted n2 in term 2: not held against it
    return {"n3": [at]}


def _alteration_excuses_one_boot_only(run: Run) -> dict[str, list[float]]:
    at = run.ts + 0.0005
    run.boot("n3", term=2, vote="n2", commit=8, last_index=8)  # the boot after the alteration
    run.replicate(9, 10, 2)
    run.boot("n3", term=2, vote="n2", commit=10, last_index=9)  # a later power loss: no excuse
    return {"n3": [at]}


PASSING: list[tuple[str, Scenario]] = [
    ("log-reaches-applied", _log_reaches_applied),
    ("old-boot-event-without-last-index", _old_boot_event_without_last_index),
    ("refused-after-corruption", _refused_after_corruption),
    ("truncated-wal-goes-back", _truncated_wal_goes_back),
]
VIOLATING: list[tuple[str, Scenario, str]] = [
    ("log-shorter-than-applied", _log_shorter_than_applied, "recovered its log up to index 6"),
    ("refused-after-power-loss", _refused_after_power_loss, "refused to start on its own data"),
    ("alteration-excuses-one-boot-only", _alteration_excuses_one_boot_only,
     "recovered its log up to index 9, but an earlier boot had applied index 10"),
]


def _write(root: Path, events: dict[str, list[dict[str, Any]]]) -> Path:
    for node, evs in events.items():
        d = root / "nodes" / node
        d.mkdir(parents=True)
        (d / "events.jsonl").write_text("".join(json.dumps(ev) + "\n" for ev in evs))
    return root


def _both(tmp_path: Path, run: Run, altered: dict[str, list[float]]) -> dict[str, Any]:
    by_check = check(run.events, altered).to_json()
    by_run = check_run(_write(tmp_path, run.events), altered=altered).to_json()
    for doc in (by_check, by_run):
        doc["stats"].pop("check_seconds")
    assert by_check == by_run
    return by_check


@pytest.mark.parametrize("name,scenario", PASSING, ids=[p[0] for p in PASSING])
def test_passes(tmp_path: Path, name: str, scenario: Scenario) -> None:
    run = healthy()
    altered = scenario(run)
    doc = _both(tmp_path, run, altered)
    assert doc["valid"] is True, doc["violations"]


@pytest.mark.parametrize("name,scenario,message", VIOLATING, ids=[v[0] for v in VIOLATING])
def test_violates(tmp_path: Path, name: str, scenario: Scenario, message: str) -> None:
    run = healthy()
    altered = scenario(run)
    doc = _both(tmp_path, run, altered)
    assert doc["valid"] is False
    assert {v["kind"] for v in doc["violations"]} == {"durability"}
    assert any(message in v["message"] for v in doc["violations"]), doc["violations"]


def test_refusals_are_recorded_with_their_reason(tmp_path: Path) -> None:
    run = healthy()
    altered = _refused_after_corruption(run)
    refusals = _both(tmp_path, run, altered)["stats"]["refusals"]
    assert [(r["node"], r["boot"], r["excused"]) for r in refusals] == [("n3", 2, True), ("n3", 2, True)]
    assert "checksum mismatch" in refusals[0]["reason"]
    # without the alteration the same refusals are data loss
    doc = _both(tmp_path / "plain", run, {})
    assert doc["valid"] is False and "checksum mismatch" in doc["violations"][0]["message"]


def test_a_node_that_comes_back_after_refusing_keeps_its_boot_number(tmp_path: Path) -> None:
    run = healthy()
    at = run.ts + 0.0005
    run.refuse("n3", "wal corrupt")
    run.boot("n3", fresh=False, term=2, vote="n2", commit=8, last_index=8)
    assert run.events["n3"][-1]["boot"] == 2
    assert _both(tmp_path, run, {"n3": [at]})["valid"] is True
