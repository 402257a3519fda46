"""Property tests: random correct runs always pass; one seeded fault in them is always found."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.safety import check
from tests.support.safety_sim import NODES, Sim, episodes


@settings(max_examples=60, deadline=None)
@given(episodes)
def test_random_correct_runs_pass(plan: list[tuple[str, int, int]]) -> None:
    result = check(Sim().play(plan).events)
    assert result.valid is True, result.details["violations"]


@settings(max_examples=40, deadline=None)
@given(episodes, st.integers(0, 2))
def test_a_second_leader_is_always_found(plan: list[tuple[str, int, int]], i: int) -> None:
    sim = Sim()
    sim.play(plan)
    if sim.leader is None:
        sim.elect(NODES[0])
    usurper = NODES[(NODES.index(sim.leader or "n1") + 1 + i % 2) % 3]
    sim.run.role(usurper, "leader", sim.term, usurper)
    kinds = {v["kind"] for v in check(sim.run.events).details["violations"]}
    assert kinds == {"election-safety"}


@settings(max_examples=40, deadline=None)
@given(episodes, st.integers(0, 2))
def test_a_divergent_entry_is_always_found(plan: list[tuple[str, int, int]], i: int) -> None:
    sim = Sim()
    sim.play(plan)
    sim.write(1)
    sim.run.apply(NODES[i], sim.last + 1, sim.term, data="only-here")
    sim.run.apply(NODES[(i + 1) % 3], sim.last + 1, sim.term, data="elsewhere")
    kinds = {v["kind"] for v in check(sim.run.events).details["violations"]}
    assert kinds == {"state-machine-safety"}
