"""The Raft paper's figure 8, played on a raftkv cluster through the local provider's proxies.

A leader may count replicas only of entries of its own term (§5.4.2). The interleaving that
shows why: an entry of an old term reaches a majority under a new leader, the leader counts
it committed, and then a node holding a different entry of a newer term at that index is
still elected and overwrites it. With raftkv's `commit-old-term` bug the first leader applies
the old entry and the later ones apply the newer one at the same index: divergent state
machines, which the Raft safety checker reports.

Every step is a partition, the loss of chosen messages, or an append cut short (as a sender
with a smaller size limit would have sent it), so a correct Raft is safe under all of it; the
steps only make a rare timing certain:

1. Isolate the leader L (term t). It keeps appending clients' writes of term t for a while.
   The others elect a new leader W among themselves, but the entries of its sender's term are
   stripped from every append between them: the other follower R catches up with the older
   entries W holds, while W's first entry of term t+1 (at index k) stays on W alone.
2. Isolate W and let L back in with the others (R). L's log is longer than R's, so L wins a
   later term and sends R its entries from index k on, one per message (the config sets
   `max_size_per_msg: 1`). Every message from L to R that carries a commit index >= k is
   lost, as if L crashed right after committing. With the bug, L commits its old-term entry
   k as soon as R acknowledges it, so R never receives L's new-term entry; without the bug,
   L commits nothing until R holds L's new-term entry too.
3. Isolate L again. W's entry k (term t+1) is newer than R's last (term t) unless R got L's
   new-term entry, so W is elected only in the buggy case, and commits its own entry at k.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.net.grudges import complete_grudge
from harness.net.msgfilter import drop_commit_at_least, strip_new_term_entries
from harness.net.proxy import ProxyHub
from harness.protocols import HarnessError, Provider

STEP_TIMEOUT = 10.0  # bound on each wait of the scenario (elections take a few timeouts)
ATTEMPTS = 3  # step 1 needs the two followers' logs equal when the leader leaves
POLL = 0.05
SETTLE = 0.3  # for messages already in flight when a partition starts

Status = Callable[[str], "dict[str, Any] | None"]


def _wait(cond: Callable[[], Any], timeout: float = STEP_TIMEOUT) -> Any:
    """Poll `cond()` until it returns something truthy (returned), or None at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL)


def _leader_among(status: Status, nodes: Sequence[str], above_term: int) -> tuple[str, dict[str, Any]] | None:
    for n in nodes:
        st = status(n)
        if st and st.get("role") == "leader" and int(st.get("term", 0)) > above_term:
            return n, st
    return None


def _field(status: Status, node: str, name: str) -> int:
    st = status(node)
    if st is None:
        raise HarnessError(f"figure-eight: {node} does not answer its admin status")
    return int(st[name])


class _Unlucky(HarnessError):
    """Step 1 did not set the stage (the timing of the cluster's own traffic); retried."""


def play(
    status: Status,
    leader: Callable[[], str | None],
    members: Sequence[str],
    provider: Provider,
    hub: ProxyHub,
    rules: list[tuple[str, str]],
) -> dict[str, Any]:
    """Run the three steps on `members` (live voters), retrying step 1 up to ATTEMPTS times.
    Every link given a message rule is appended to `rules` at once, so the caller can clear
    them even if a step fails. Returns what happened, for the history; raises HarnessError
    when the stage cannot be set (the caller heals: an attempt leaves no lasting fault)."""
    if len(members) != 3:
        raise HarnessError(f"figure-eight is played on 3 voters, the cluster has {len(members)}")
    missed: list[str] = []
    for _ in range(ATTEMPTS):
        lead = _wait(leader)
        if lead is None:
            raise HarnessError(f"figure-eight: no leader to start from within {STEP_TIMEOUT} s")
        try:
            value = _play_once(status, lead, members, provider, hub, rules)
            return {**value, "attempts": len(missed) + 1, "missed": missed}
        except _Unlucky as e:
            missed.append(str(e))
            for src, dst in rules:
                hub.set_rule(src, dst, None)
            provider.heal()
    raise HarnessError(f"figure-eight: stage not set in {ATTEMPTS} attempts: {missed[-1]}")


def _play_once(
    status: Status,
    old: str,
    members: Sequence[str],
    provider: Provider,
    hub: ProxyHub,
    rules: list[tuple[str, str]],
) -> dict[str, Any]:
    rest = [n for n in members if n != old]
    term = _field(status, old, "term")
    value: dict[str, Any] = {"old_leader": old, "term": term}

    def rule(src: str, dst: str, r: Any) -> None:
        rules.append((src, dst))
        hub.set_rule(src, dst, r)

    # step 1: the old leader alone; the others lose each other's new-term entries
    for a in rest:
        for b in rest:
            if a != b:
                rule(a, b, strip_new_term_entries("APP"))
    provider.partition(complete_grudge([[old], rest]))
    time.sleep(SETTLE)
    lasts = {n: _field(status, n, "last_index") for n in rest}
    got = _wait(lambda: _leader_among(status, rest, term))
    if got is None:
        raise HarnessError(f"figure-eight: {rest} elected no leader within {STEP_TIMEOUT} s")
    new, new_st = got
    (other,) = [n for n in rest if n != new]
    k = lasts[new] + 1  # the new leader's first entry of its term
    old_last = _field(status, old, "last_index")
    value.update(new_leader=new, new_term=int(new_st["term"]), index=k, logs={**lasts, old: old_last})
    if lasts[new] < lasts[other]:
        raise _Unlucky(f"{new} won with a shorter log than {other} ({lasts})")
    # the other follower catches up with the new leader's older entries (not its own)
    caught_up = _wait(lambda: _field(status, other, "last_index") == lasts[new])
    if not caught_up:
        raise _Unlucky(f"{other} did not catch up with {new}'s log up to {lasts[new]} ({lasts})")
    if old_last < k:
        raise _Unlucky(f"{old} appended no entry at index {k} while isolated (last {old_last})")

    # step 2: the new leader alone; the old one back with the other, which never hears of a
    # commit at or above k
    for src, dst in list(rules):
        hub.set_rule(src, dst, None)
    rule(old, other, drop_commit_at_least(k, "APP", "HEARTBEAT", "SNAP"))
    provider.partition(complete_grudge([[new], [old, other]]))
    got = _wait(lambda: _leader_among(status, [old, other], int(new_st["term"])))
    if got is None:
        raise HarnessError(f"figure-eight: {old} and {other} elected no leader within {STEP_TIMEOUT} s")
    value["second_leader"], second_st = got[0], got[1]
    value["second_term"] = int(second_st["term"])
    value["old_leader_commit"] = _wait(
        lambda: (c := _field(status, got[0], "commit")) >= k and c
    ) or _field(status, got[0], "commit")

    # step 3: the old leader alone again; whoever wins among the others commits at k
    hub.set_rule(old, other, None)
    provider.partition(complete_grudge([[old], [new, other]]))
    got = _wait(lambda: _leader_among(status, [new, other], value["second_term"]))
    if got is None:
        value["third_leader"] = None
        return value
    value["third_leader"] = got[0]
    value["third_commit"] = _wait(lambda: (c := _field(status, got[0], "commit")) >= k and c) or _field(
        status, got[0], "commit"
    )
    return value
