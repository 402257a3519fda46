"""Partition shapes as grudges, after Jepsen's nemesis: `{dst: {src, ...}}` means dst drops
all traffic from each src. All functions are pure; randomness comes from the caller's rng."""

from __future__ import annotations

import random
from collections.abc import Sequence

Grudge = dict[str, set[str]]


def complete_grudge(groups: Sequence[Sequence[str]]) -> Grudge:
    """Every node drops traffic from every node outside its own group."""
    grudge: Grudge = {}
    for g in groups:
        others = {n for h in groups if h is not g for n in h} - set(g)
        for n in g:
            grudge[n] = set(others)
    return grudge


def halves(nodes: Sequence[str], rng: random.Random) -> tuple[Grudge, list[list[str]]]:
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    cut = len(shuffled) // 2
    groups = [sorted(shuffled[:cut]), sorted(shuffled[cut:])]
    return complete_grudge(groups), groups


def isolate(nodes: Sequence[str], node: str) -> tuple[Grudge, list[list[str]]]:
    groups = [[node], sorted(n for n in nodes if n != node)]
    return complete_grudge(groups), groups


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> tuple[Grudge, dict[str, list[str]]]:
    """Every node sees a majority (itself included), and no two nodes see the same one.

    For five or more nodes the links are symmetric (each node sees its ring neighbours);
    for fewer, node i sees the next nodes around the ring, so the cut is one-directional."""
    ring = list(nodes)
    rng.shuffle(ring)
    n = len(ring)
    majority = n // 2 + 1
    views: dict[str, set[str]] = {}
    for i, node in enumerate(ring):
        if n >= 5:
            d = majority // 2  # 2d + 1 >= majority
            seen = {ring[(i + k) % n] for k in range(-d, d + 1)}
        else:
            seen = {ring[(i + k) % n] for k in range(majority)}
        views[node] = seen
    grudge = {node: set(ring) - seen for node, seen in views.items()}
    return grudge, {node: sorted(seen) for node, seen in views.items()}


def bridge(nodes: Sequence[str], rng: random.Random) -> tuple[Grudge, list[list[str]]]:
    """Two halves that cannot talk to each other, and one node that talks to both."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    middle = shuffled[0]
    rest = shuffled[1:]
    cut = len(rest) // 2
    left, right = sorted(rest[:cut]), sorted(rest[cut:])
    grudge: Grudge = {n: set(right) for n in left}
    grudge.update({n: set(left) for n in right})
    grudge[middle] = set()
    return grudge, [left + [middle], [middle] + right]


def links(grudge: Grudge) -> set[tuple[str, str]]:
    """The directed links (src, dst) a grudge cuts."""
    return {(src, dst) for dst, srcs in grudge.items() for src in srcs if src != dst}
