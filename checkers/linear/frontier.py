"""The second search: breadth-first over real time, linearizing just in time.

Call and return events are replayed in real-time order. The frontier holds every configuration
(which pending operations are already linearized, model state) consistent with the history so
far. At the return of an operation X every configuration must contain X, so the frontier is
extended by the sequences of pending operations that end with X, and nothing more: operations
are linearized only when a return forces it (knossos's "linear" algorithm, after Lowe).

Where the depth-first search (`search.py`) can wander through a long history choosing which
crashed operations to place, this one forgets the past at every return: a configuration is
just (pending linearized set, state), with the same pruning as the other search (read-only
operations placed at once, dominated info sets dropped, interchangeable info operations tried
once). It is the better engine for refuting register histories with many crashed operations;
`check` runs both on every partition and takes the first verdict.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from checkers.linear.model import Model, State
from checkers.linear.operation import Operation
from checkers.linear.search import Failure, Linearization, PartitionSearch, SearchLimit

#: A linearization, newest first: (op index, state after it, previous node, length) or None.
Path = tuple[int, State, Any, int] | None
Frontier = dict[tuple[int, State], Path]


class FrontierSearch(PartitionSearch):
    """One partition's check, breadth first. `steps()` yields now and then and returns None or
    a Failure."""

    def __init__(
        self,
        model: Model,
        ops: list[Operation],
        deadline: float | None = None,
        max_configs: int = 2_000_000,
    ) -> None:
        super().__init__(model, ops, deadline, max_configs)
        self._ticks = 0

    def steps(self) -> Generator[None, None, Failure | None]:
        events: list[tuple[float, int, int]] = []
        for i, o in enumerate(self.ops):
            events.append((o.call_pos, 0, i))
            if o.type == "ok":
                events.append((o.return_pos, 1, i))
        events.sort()  # by time, calls before returns at equal times
        slot_of: dict[int, int] = {}
        op_in_slot: list[int] = []
        free: list[int] = []
        info_groups: dict[Any, list[int]] = {}
        info_bits = 0
        frontier: Frontier = {(0, self.model.init()): None}
        for _, kind, i in events:
            if kind == 0:
                slot = free.pop() if free else len(op_in_slot)
                if slot == len(op_in_slot):
                    op_in_slot.append(i)
                else:
                    op_in_slot[slot] = i
                slot_of[i] = slot
                o = self.ops[i]
                if o.type == "info":
                    info_bits |= 1 << slot
                    info_groups.setdefault((o.f, o.key, o.value), []).append(slot)
                continue
            slot = slot_of.pop(i)
            new = yield from self._closure(frontier, slot, op_in_slot, info_bits, info_groups, None)
            if not new:
                return self._failure(frontier, slot, op_in_slot, info_bits, info_groups, i)
            frontier = new
            op_in_slot[slot] = -1
            free.append(slot)
        return None

    def _closure(
        self,
        frontier: Frontier,
        x: int,
        op_in_slot: list[int],
        info_bits: int,
        info_groups: dict[Any, list[int]],
        track: list[Path] | None,
    ) -> Generator[None, None, Frontier]:
        """Every configuration reachable by a sequence of pending ops ending with slot x."""
        bx = 1 << x
        read_only = self.read_only
        next_states = self.next_states
        ok_bits = ~info_bits
        pending_ok = [s for s, i in enumerate(op_in_slot) if i >= 0 and not (info_bits >> s) & 1]
        ro_slots = [s for s in pending_ok if read_only[op_in_slot[s]]]
        rw_slots = [s for s in pending_ok if not read_only[op_in_slot[s]]]
        groups = list(info_groups.values())
        new: Frontier = {}
        new_dom: dict[tuple[int, State], list[int]] = {}
        visited: dict[tuple[int, State], list[int]] = {}

        def emit(mask: int, state: State, path: Path) -> None:
            mask &= ~bx
            key = (mask & ok_bits, state)
            im = mask & info_bits
            known = new_dom.get(key)
            if known is None:
                new_dom[key] = [im]
            else:
                if any(k & ~im == 0 for k in known):
                    return
                for k in [k for k in known if im & ~k == 0]:
                    known.remove(k)
                    new.pop((key[0] | k, state), None)
                known.append(im)
            new[(mask, state)] = path

        stack: list[tuple[int, State, Path]] = []
        for (mask, state), path in frontier.items():
            if mask & bx:
                emit(mask, state, path)
            else:
                stack.append((mask, state, path))
        # configurations that placed one more info op wait for the next layer: the smallest
        # info sets are explored first, so the larger ones they dominate are pruned
        later: list[tuple[int, State, Path]] = []
        while stack or later:
            if not stack:
                stack, later = later, []
            self._ticks += 1
            if self._ticks & 1023 == 0:
                if len(visited) + len(new) > self.max_configs:
                    raise SearchLimit(f"more than {self.max_configs} configurations")
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise SearchLimit("time limit")
                yield
            mask, state, path = stack.pop()
            # linearize matching read-only ops right away: it never loses a linearization
            for s in ro_slots:
                if not mask & (1 << s):
                    i = op_in_slot[s]
                    if next_states(i, state):
                        mask |= 1 << s
                        path = (i, state, path, (path[3] if path else 0) + 1)
            if mask & bx:
                emit(mask, state, path)
                continue
            key = (mask & ok_bits, state)
            im = mask & info_bits
            seen = visited.get(key)
            if seen is None:
                visited[key] = [im]
            elif any(k & ~im == 0 for k in seen):
                continue
            else:
                seen[:] = [k for k in seen if im & ~k]
                seen.append(im)
            if track is not None:
                track.append(path)
            depth = (path[3] if path else 0) + 1
            for s in rw_slots:
                if mask & (1 << s):
                    continue
                i = op_in_slot[s]
                for s2 in next_states(i, state):
                    node: Path = (i, s2, path, depth)
                    if s == x:
                        emit(mask | (1 << s), s2, node)
                    else:
                        stack.append((mask | (1 << s), s2, node))
            for group in groups:
                for s in group:
                    if not mask & (1 << s):
                        i = op_in_slot[s]
                        for s2 in next_states(i, state):
                            if s2 != state:  # an info op that changes nothing is never needed
                                later.append((mask | (1 << s), s2, (i, s2, path, depth)))
                        break
        return new

    def _failure(
        self,
        frontier: Frontier,
        x: int,
        op_in_slot: list[int],
        info_bits: int,
        info_groups: dict[Any, list[int]],
        op: int,
    ) -> Failure:
        """The op whose return emptied the frontier, with the longest tries that led there."""
        track: list[Path] = list(frontier.values())
        replay = self._closure(frontier, x, op_in_slot, info_bits, info_groups, track)
        try:
            while True:
                next(replay)
        except (StopIteration, SearchLimit):
            pass
        track.sort(key=lambda p: p[3] if p else 0, reverse=True)
        longest = [_unwind(p) for p in track[:3]]
        pending = [i for i in op_in_slot if i >= 0 and i != op]
        return Failure(op=op, longest=longest, pending=[op, *pending])


def _unwind(path: Path) -> Linearization:
    out: Linearization = []
    while path is not None:
        out.append((path[0], path[1]))
        path = path[2]
    out.reverse()
    return out
