"""A small simulator of correct Raft runs as node events, for the safety checker's property tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.support.safety_events import Run

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
