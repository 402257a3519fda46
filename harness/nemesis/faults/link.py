"""Link faults: degrade some directed peer links (src -> dst) for a while: delay them, add
jitter, make them lose, duplicate or reorder what they carry.

Kinds (nemesis.links), with the parameters each applies from the nemesis section:
- delay: `link_delay_ms`;
- jitter: `link_delay_ms` +- `link_jitter_ms`, order kept;
- loss: `link_loss` (probability per message or packet);
- duplicate: `link_duplicate` (probability per message);
- reorder: `link_delay_ms` +- `link_jitter_ms`, a fraction `link_reorder` going at once.

Targets (nemesis.link_targets, one drawn per fault): `node`, the links into, out of, or both
ways of one node; `some`, a random subset of the directed links; `all`, every link.

What each kind means depends on what the provider's network can see of the DB's peer traffic
(harness.net.linkcond): whole Raft messages through the local provider's proxies (raftkv),
byte streams through them (etcd and others: delay, jitter and reordering across connections
only), packets in the netns provider's namespaces (loss only: no netem on this kernel). The
provider refuses, when the config is validated, what it cannot make real for the DB.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from typing import Any

from harness.nemesis.registry import Fault
from harness.nemesis.state import ActiveFault, NemesisState
from harness.net.linkcond import LinkConditions
from harness.protocols import DB, HarnessError, LinkFaults, Provider

KINDS = ("delay", "jitter", "loss", "duplicate", "reorder")
TARGETS = ("node", "some", "all")
DIRECTIONS = ("in", "out", "both")

#: The parameter of each kind, in the config's nemesis section (with its default there).
DEFAULTS = {
    "link_delay_ms": 100.0,
    "link_jitter_ms": 50.0,
    "link_loss": 0.1,
    "link_duplicate": 0.2,
    "link_reorder": 0.5,
}


def parameters(kind: str, opts: Mapping[str, Any]) -> dict[str, float]:
    """What a fault of `kind` applies to each of its links (LinkConditions fields)."""

    def p(name: str) -> float:
        v = opts.get(name)
        return float(DEFAULTS[name] if v is None else v)

    if kind == "delay":
        return {"delay_ms": p("link_delay_ms")}
    if kind == "jitter":
        return {"delay_ms": p("link_delay_ms"), "jitter_ms": p("link_jitter_ms")}
    if kind == "loss":
        return {"loss": p("link_loss")}
    if kind == "duplicate":
        return {"duplicate": p("link_duplicate")}
    if kind == "reorder":
        return {"delay_ms": p("link_delay_ms"), "jitter_ms": p("link_jitter_ms"), "reorder": p("link_reorder")}
    raise HarnessError(f"nemesis: unknown link kind {kind!r}")


def choose_links(
    members: list[str], target: str, rng: random.Random
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The directed links a fault degrades, and how they were chosen (for the history)."""
    every = list(itertools.permutations(members, 2))
    if target == "all":
        return {"target": "all"}, every
    if target == "some":
        return {"target": "some"}, sorted(rng.sample(every, rng.randint(1, max(1, len(every) // 2))))
    if target == "node":
        node = rng.choice(members)
        direction = rng.choice(DIRECTIONS)
        links = [(s, d) for s, d in every if (direction != "out" and d == node) or (direction != "in" and s == node)]
        return {"target": "node", "node": node, "direction": direction}, sorted(links)
    raise HarnessError(f"nemesis: unknown link target {target!r}")


def _owner(active: ActiveFault) -> str:
    """Names one fault's conditions on the provider (overlapping faults combine)."""
    return f"link-{active.event.at}-{active.event.seed}"


def start(st: NemesisState, active: ActiveFault, rng: random.Random) -> dict[str, Any]:
    provider = st.provider
    assert isinstance(provider, LinkFaults)
    targets = list(st.opts.get("link_targets") or TARGETS)
    chosen, links = choose_links(st.members(), rng.choice(targets), rng)
    if not links:
        raise HarnessError("no link to degrade (fewer than 2 members)")
    params = parameters(active.kind, st.opts)
    unit = provider.link_unit(st.db)
    try:
        cond = LinkConditions(unit=unit, **params)
    except ValueError as e:
        raise HarnessError(str(e)) from None
    owner = _owner(active)
    active.undo["owner"] = owner
    provider.set_link_conditions(owner, {link: cond for link in links}, active.event.seed)
    # parameters first: the report shows the start of a long value
    return {"kind": active.kind, **params, "unit": unit, **chosen, "links": [list(link) for link in links]}


def stop(st: NemesisState, active: ActiveFault) -> dict[str, Any]:
    provider = st.provider
    assert isinstance(provider, LinkFaults)
    owner = active.undo.get("owner")
    done = provider.clear_link_conditions(owner) if owner is not None else {}
    return {"kind": active.kind, "healed": True, **done}


def heal(st: NemesisState, done: dict[str, Any], errors: list[str]) -> None:
    if not isinstance(st.provider, LinkFaults):
        return
    try:
        cleared = st.provider.clear_link_conditions(None)
    except (HarnessError, OSError) as e:
        errors.append(f"heal links: {e}")
        return
    if cleared:
        done["links_restored"] = cleared


def refuse(test: Mapping[str, Any], db: DB, provider: Provider) -> str | None:
    assert isinstance(provider, LinkFaults)  # provider_needs is checked first
    nemesis = test.get("nemesis") or {}
    kinds = FAULT.kinds_of(nemesis)
    for kind in kinds:
        why = provider.link_refusal(kind, db)
        if why:
            return f"kind {kind!r}: {why}"
    reorder = parameters("reorder", nemesis)
    if "reorder" in kinds and not reorder["delay_ms"] and not reorder["jitter_ms"]:
        return "kind 'reorder' needs nemesis.link_delay_ms or link_jitter_ms above 0 (nothing would be overtaken)"
    return None


FAULT = Fault(
    name="link",
    summary="delay, jitter, lose, duplicate or reorder what some directed links carry",
    start=start,
    stop=stop,
    heal=heal,
    heal_order=11,
    kinds=KINDS,
    kinds_field="links",
    provider_needs=(LinkFaults,),
    min_nodes=2,
    refuse=refuse,
)
