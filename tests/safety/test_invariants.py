"""Every Raft safety invariant, each with passing and violating synthetic event logs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from checkers.safety import KINDS, check
from tests.support.safety_events import Run, healthy
from tests.support.safety_scenarios import PASSING, VIOLATING


def kinds_found(run: Run) -> set[str]:
    result = check(run.events)
    assert result.name == "raft-safety"
    found = {v["kind"] for v in result.details["violations"]}
    assert result.valid is (not found)
    return found


# -- passing cases: correct behaviour that a naive checker might flag --------------------


@pytest.mark.parametrize("name,scenario", PASSING, ids=[p[0] for p in PASSING])
def test_correct_runs_pass(name: str, scenario: Callable[[Run], None]) -> None:
    run = healthy()
    scenario(run)
    assert kinds_found(run) == set()


@pytest.mark.parametrize("name,scenario,expected", VIOLATING, ids=[v[0] for v in VIOLATING])
def test_violations_are_found(name: str, scenario: Callable[[Run], None],
                              expected: set[str]) -> None:
    run = healthy()
    scenario(run)
    assert kinds_found(run) == expected


def test_every_kind_has_a_violating_case() -> None:
    assert set().union(*(v[2] for v in VIOLATING)) == set(KINDS)
