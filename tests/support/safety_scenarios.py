"""Synthetic event-log scenarios of the Raft safety checker: correct runs (PASSING) and runs
that break one invariant each (VIOLATING, with the violation kinds they must produce)."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.safety_events import Run


def restart_with_durable_state(run: Run) -> None:
    run.boot("n3", term=2, vote="n2", commit=8)
    run.role("n3", "follower", 2, "n2")
    run.commit("n3", 8, 2)
    run.replay("n3", 1, 8)  # replays the log from index 1: a new boot, a new sequence


def restart_from_snapshot(run: Run) -> None:
    run.snapshot("n3", 5, 1, source="local")
    run.boot("n3", term=2, vote="n2", commit=8, snapshot_index=5)
    run.replay("n3", 6, 8)


def vote_persisted_twice(run: Run) -> None:
    run.vote("n3", 2, "n2")
    run.commit("n3", 8, 2)


def snapshot_install_jump(run: Run) -> None:
    run.elect("n1", 3)
    run.snapshot("n3", 12, 3)
    run.replicate(9, 13, 3, ["n1", "n2"])
    run.apply("n3", 13, 3)


def pre_vote_keeps_term(run: Run) -> None:
    run.role("n3", "pre-candidate", 2)
    run.role("n3", "follower", 2, "n2")
    run.role("n3", "candidate", 3)
    run.vote("n3", 3, "n3")
    run.role("n3", "follower", 3)


def removed_node_stays_follower(run: Run) -> None:
    for n in run.nodes:
        run.conf(n, 9, ["n1", "n2"])
    run.elect("n1", 3, ["n1", "n2"])
    run.role("n3", "pre-candidate", 2)


def readded_node_may_lead(run: Run) -> None:
    for n in run.nodes:
        run.conf(n, 9, ["n1", "n2"])
    for n in run.nodes:
        run.conf(n, 10, ["n1", "n2", "n3"])
    run.elect("n3", 3)


def wiped_node_rejoins(run: Run) -> None:
    # A fresh data directory restarts the boot count: a new member that remembers nothing.
    run.boot("n3", fresh=True)
    run.role("n3", "follower", 2, "n2")
    run.vote("n3", 2, "n1")
    run.replay("n3", 1, 8)


def later_leader_agrees(run: Run) -> None:
    run.elect("n3", 3)
    run.replicate(9, 10, 3)


PASSING: list[tuple[str, Callable[[Run], None]]] = [
    ("healthy", lambda run: None),
    ("restart-with-durable-state", restart_with_durable_state),
    ("restart-from-snapshot", restart_from_snapshot),
    ("vote-persisted-twice", vote_persisted_twice),
    ("snapshot-install-jump", snapshot_install_jump),
    ("pre-vote-keeps-term", pre_vote_keeps_term),
    ("removed-node-stays-follower", removed_node_stays_follower),
    ("readded-node-may-lead", readded_node_may_lead),
    ("wiped-node-rejoins", wiped_node_rejoins),
    ("later-leader-agrees", later_leader_agrees),
]


# -- violating cases ---------------------------------------------------------------------

def two_leaders_one_term(run: Run) -> None:
    run.role("n3", "candidate", 2)
    run.role("n3", "leader", 2, "n3")


def follower_names_other_leader(run: Run) -> None:
    run.role("n3", "follower", 2, "n1")


def leader_twice_across_boots(run: Run) -> None:
    run.boot("n2", term=2, vote="n2", commit=8)
    run.role("n2", "leader", 2, "n2")


def vote_forgotten_on_restart(run: Run) -> None:
    # vote-not-durable: n3 granted n1 in term 3, restarted without it, granted n2 in term 3.
    run.role("n3", "follower", 3)
    run.vote("n3", 3, "n1")
    run.boot("n3", term=2, vote="n2", commit=8)
    run.role("n3", "follower", 3)
    run.vote("n3", 3, "n2")


def two_votes_one_boot(run: Run) -> None:
    run.role("n3", "follower", 3)
    run.vote("n3", 3, "n1")
    run.vote("n3", 3, "n2")


def removed_node_leads(run: Run) -> None:
    # timeout-now-non-member: n3 applied its own removal, then won an election.
    for n in run.nodes:
        run.conf(n, 9, ["n1", "n2"])
    run.role("n3", "candidate", 3)
    run.role("n3", "leader", 3, "n3")


def learner_leads_after_snapshot(run: Run) -> None:
    for n in ("n1", "n2"):
        run.conf(n, 9, ["n1", "n2"])
    run.snapshot("n3", 9, 2)  # the snapshot carries the configuration without n3
    run.role("n3", "candidate", 3)
    run.role("n3", "leader", 3, "n3")


def divergent_apply(run: Run) -> None:
    run.apply("n3", 9, 2, data="x")
    run.apply("n1", 9, 2, data="y")


def snapshot_term_mismatch(run: Run) -> None:
    run.snapshot("n3", 8, 1, source="local")


def apply_gap(run: Run) -> None:
    run.apply("n1", 10, 2)


def apply_repeated(run: Run) -> None:
    run.apply("n1", 8, 2)


def apply_inside_snapshot(run: Run) -> None:
    run.boot("n3", term=2, vote="n2", commit=8, snapshot_index=5)
    run.apply("n3", 4, 1)


def snapshot_behind_applied(run: Run) -> None:
    run.snapshot("n3", 3, 1)


def later_leader_lacks_committed_entry(run: Run) -> None:
    # Entry 9 of term 2 is applied by n1 and n2 in term 2; n3 leads term 3 with its own entry 9.
    run.replicate(9, 9, 2, ["n1", "n2"])
    run.role("n3", "candidate", 3)
    run.role("n3", "leader", 3, "n3")
    run.commit("n3", 9, 3)
    run.apply("n3", 9, 3, data="usurper")


def term_goes_back(run: Run) -> None:
    run.role("n3", "follower", 1, "n1")


def commit_goes_back(run: Run) -> None:
    run.commit("n3", 4, 2)


def hard_state_term_goes_back(run: Run) -> None:
    run.vote("n3", 1, "n1")


def recovered_term_lower(run: Run) -> None:
    run.boot("n3", term=1, vote="n1", commit=8)


def recovered_commit_lower(run: Run) -> None:
    run.boot("n3", term=2, vote="n2", commit=3)


def recovered_other_vote(run: Run) -> None:
    run.boot("n3", term=2, vote=None, commit=8)


VIOLATING: list[tuple[str, Callable[[Run], None], set[str]]] = [
    ("two-leaders-one-term", two_leaders_one_term, {"election-safety"}),
    ("follower-names-other-leader", follower_names_other_leader, {"election-safety"}),
    ("leader-twice-across-boots", leader_twice_across_boots, {"election-safety"}),
    ("vote-forgotten-on-restart", vote_forgotten_on_restart,
     {"one-vote-per-term", "durability"}),
    ("two-votes-one-boot", two_votes_one_boot, {"one-vote-per-term"}),
    ("removed-node-leads", removed_node_leads, {"leader-membership"}),
    ("learner-leads-after-snapshot", learner_leads_after_snapshot, {"leader-membership"}),
    ("divergent-apply", divergent_apply, {"state-machine-safety"}),
    ("snapshot-term-mismatch", snapshot_term_mismatch, {"state-machine-safety"}),
    ("apply-gap", apply_gap, {"apply-order"}),
    ("apply-repeated", apply_repeated, {"apply-order"}),
    ("apply-inside-snapshot", apply_inside_snapshot, {"apply-order"}),
    ("snapshot-behind-applied", snapshot_behind_applied, {"apply-order"}),
    ("later-leader-lacks-committed-entry", later_leader_lacks_committed_entry,
     {"leader-completeness", "state-machine-safety"}),
    ("term-goes-back", term_goes_back, {"monotonicity"}),
    ("commit-goes-back", commit_goes_back, {"monotonicity"}),
    ("hard-state-term-goes-back", hard_state_term_goes_back, {"monotonicity"}),
    ("recovered-term-lower", recovered_term_lower, {"durability"}),
    ("recovered-commit-lower", recovered_commit_lower, {"durability"}),
    ("recovered-other-vote", recovered_other_vote, {"durability"}),
]
