"""Property tests: random correct runs always pass; one seeded fault in them is always found."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from safety_events import Run

from checkers.safety import check

NODES = ("n1", "n2", "n3")

# episode = (what, node index, size)
episodes = st.lists(
    st.tuples(st.sampled_from(["elect", "write", "restart", "lag"]), st.integers(0, 2),
              st.integers(1, 4)),
    min_size=1, max_size=25,
)


@dataclass
class Sim:
    """Drives a Run through correct Raft behaviour: elections, writes, restarts, snapshots."""

    run: Run = field(default_factory=lambda: Run(NODES))
    term: int = 0
    leader: str | None = None
    last: int = 0

    def __post_init__(self) -> None:
        for n in NODES:
            self.run.boot(n)

    def elect(self, node: str) -> None:
        self.term += 1
        self.leader = node
        self.run.elect(node, self.term)

    def write(self, k: int, nodes: list[str] | None = None) -> None:
        if self.leader is None:
            self.elect(NODES[0])
        self.run.replicate(self.last + 1, self.last + k, self.term, nodes)
        self.last += k

    def restart(self, node: str) -> None:
        self.run.boot(node, term=self.term, vote=self.leader, commit=self.last)
        if self.last:
            self.run.replay(node, 1, self.last)
        if self.term:
            self.run.role(node, "follower", self.term, self.leader)

    def lag(self, node: str, k: int) -> None:
        """`node` misses k entries, then catches up by the leader's snapshot."""
        self.write(k, [n for n in NODES if n != node])
        self.run.snapshot(node, self.last, self.term)

    def play(self, plan: list[tuple[str, int, int]]) -> Run:
        for what, i, k in plan:
            node = NODES[i]
            if what == "elect":
                self.elect(node)
            elif what == "write":
                self.write(k)
            elif what == "restart":
                self.restart(node)
            else:
                self.lag(node, k)
        return self.run


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
