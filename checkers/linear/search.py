"""The search: Wing & Gong / Lowe's depth-first linearization with porcupine's cache.

Call and return events of one partition form a doubly linked list in real-time order (at equal
times calls come first, so such operations count as concurrent). The search walks the list:
an operation whose call comes before any pending return may be linearized next if the model
accepts it; it is then lifted out of the list and the walk restarts at the head. Meeting a
return means the operation it ends was not linearized in time: backtrack. Each configuration
(set of linearized operations, state) is explored once (the cache).

Beyond porcupine:
- indeterminate (`info`) operations have no return: they may be linearized at any point after
  their call or never, so the search succeeds as soon as every `ok` operation is placed;
- a configuration that used a subset of the info operations another explored configuration
  used, with the same `ok` operations and state, dominates it: the dominated one is pruned;
- info operations with the same call are interchangeable: only the earliest unplaced is tried;
- a read-only operation (a read, a failed-cas observation) that the state allows is placed
  without a choice point: placing it now never loses a linearization.

The cache is bounded by `max_configs` and the walk by a deadline: both give "unknown".
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from checkers.linear.model import Model, State
from checkers.linear.operation import Operation

#: A partial linearization: (op index, state after it) in order.
Linearization = list[tuple[int, State]]


class SearchLimit(Exception):
    """The deadline passed or the configuration budget ran out: the verdict is unknown."""


@dataclass
class Failure:
    """Where the search got stuck: the longest partial linearizations and what blocked them."""

    op: int
    longest: list[Linearization]
    pending: list[int]


#: The linearization on the stack as a linked list, newest first: (op, state after, parent).
_Node = tuple[int, State, Any] | None
#: A choice point: (call entry, state before, possible next states, which one was taken,
#: forced (a read-only op: no other choice needs trying), phase, path node after it).
_Frame = tuple[int, State, tuple[State, ...], int, bool, int, _Node]


@dataclass
class _Tables:
    """The entry list and per-operation facts of one partition."""

    ops: list[Operation]
    nxt: list[int] = field(default_factory=list)
    prv: list[int] = field(default_factory=list)
    op_of: list[int] = field(default_factory=list)
    ret_of: list[int] = field(default_factory=list)  # call entry -> its return entry or -1
    is_call: list[bool] = field(default_factory=list)

    def build(self) -> None:
        events: list[tuple[float, int, int]] = []
        for i, o in enumerate(self.ops):
            events.append((o.call_pos, 0, i))
            if o.type == "ok":
                events.append((o.return_pos, 1, i))
        events.sort()  # by time, calls before returns at equal times
        n = len(events) + 1  # entry 0 is the head
        self.nxt = [i + 1 for i in range(n)]
        self.nxt[-1] = -1
        self.prv = [i - 1 for i in range(n)]
        self.op_of = [-1] + [e[2] for e in events]
        self.is_call = [False] + [e[1] == 0 for e in events]
        self.ret_of = [-1] * n
        call_entry: dict[int, int] = {}
        for idx, (_, kind, i) in enumerate(events, start=1):
            if kind == 0:
                call_entry[i] = idx
            else:
                self.ret_of[call_entry[i]] = idx

    def lift(self, e: int) -> None:
        nxt, prv = self.nxt, self.prv
        for x in (e, self.ret_of[e]):
            if x < 0:
                continue
            p, q = prv[x], nxt[x]
            nxt[p] = q
            if q >= 0:
                prv[q] = p

    def unlift(self, e: int) -> None:
        nxt, prv = self.nxt, self.prv
        for x in (self.ret_of[e], e):
            if x < 0:
                continue
            p, q = prv[x], nxt[x]
            nxt[p] = x
            if q >= 0:
                prv[q] = x


class PartitionSearch:
    """What both search engines share: one partition's ops, limits, and memoised transitions."""

    def __init__(
        self,
        model: Model,
        ops: list[Operation],
        deadline: float | None = None,
        max_configs: int = 2_000_000,
    ) -> None:
        self.model = model
        self.ops = ops
        self.deadline = deadline
        self.max_configs = max_configs
        self.read_only = [model.read_only(o.input, o.output) for o in ops]
        self.trans: dict[tuple[int, State], tuple[State, ...]] = {}

    def next_states(self, op: int, state: State) -> tuple[State, ...]:
        key = (op, state)
        got = self.trans.get(key)
        if got is None:
            o = self.ops[op]
            got = tuple(self.model.step_all(state, o.input, o.output))
            self.trans[key] = got
        return got

    def steps(self) -> Generator[None, None, Failure | None]:
        """The search as a generator that yields now and then, so that several partitions
        can share the time and stop as soon as one of them fails."""
        raise NotImplementedError

    def run(self) -> Failure | None:
        """Search to the end: None if linearizable, else where it got stuck."""
        steps = self.steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: Failure | None = done.value
                return result


class Search(PartitionSearch):
    """One partition's check, depth first. `run()` returns None (linearizable) or a Failure."""

    def __init__(
        self,
        model: Model,
        ops: list[Operation],
        deadline: float | None = None,
        max_configs: int = 2_000_000,
    ) -> None:
        super().__init__(model, ops, deadline, max_configs)
        self.best: list[tuple[_Node, int, list[int], int]] = []

    def _info_siblings(self) -> list[int]:
        """For each info op, the previous info op with the same call (or -1)."""
        last: dict[Any, int] = {}
        prev = [-1] * len(self.ops)
        if not any(o.type == "info" for o in self.ops):
            return prev
        for i in sorted(range(len(self.ops)), key=lambda i: self.ops[i].call_pos):
            o = self.ops[i]
            if o.type == "info":
                sig = (o.f, o.key, o.value)
                prev[i] = last.get(sig, -1)
                last[sig] = i
        return prev

    def steps(self) -> Generator[None, None, Failure | None]:
        """The search as a generator that yields every 1024 steps, so that several
        partitions can share the time and stop as soon as one of them fails."""
        ops = self.ops
        t = _Tables(ops)
        t.build()
        nxt, prv, op_of, is_call, ret_of = t.nxt, t.prv, t.op_of, t.is_call, t.ret_of
        trans = self.trans
        read_only = self.read_only
        next_states = self.next_states
        viable = self.model.pruner(ops)
        sibling = self._info_siblings()
        info_all = 0
        for i, o in enumerate(ops):
            if o.type == "info":
                info_all |= 1 << i
        ok_all = ((1 << len(ops)) - 1) & ~info_all
        remaining = sum(1 for o in ops if o.type == "ok")
        is_info = [1 if o.type == "info" else 0 for o in ops]
        plain: set[tuple[int, State]] = set()
        dominated: dict[tuple[int, State], list[int]] = {}
        max_configs = self.max_configs
        deadline = self.deadline
        ticks = 0

        def fresh(bits: int, state: State) -> bool:
            """Record (bits, state) as explored; False if it (or a dominating one) was."""
            exact = (bits, state)
            if exact in plain:
                return False
            plain.add(exact)
            if not info_all:
                return True
            key = (bits & ok_all, state)
            im = bits & info_all
            seen = dominated.get(key)
            if seen is None:
                dominated[key] = [im]
                return True
            for k in seen:
                if k & ~im == 0:
                    return False
            # keep an antichain: the sets that used more info ops than this one are dominated
            seen[:] = [k for k in seen if im & ~k]
            seen.append(im)
            return True

        state: State = self.model.init()
        bits = 0
        calls: list[_Frame] = []
        node: _Node = None
        best_depth = 0
        entry = nxt[0]
        # phase 0 tries the callable ok ops, phase 1 the info ops: an info op is placed only
        # when nothing else works, so the smaller info sets come first and prune the larger
        phase = 0
        while remaining:
            ticks += 1
            if ticks & 1023 == 0:
                if len(plain) > max_configs:
                    raise SearchLimit(f"more than {max_configs} configurations")
                if deadline is not None and time.monotonic() > deadline:
                    raise SearchLimit("time limit")
                yield
            if is_call[entry]:
                i = op_of[entry]
                if is_info[i] != phase:
                    entry = nxt[entry]
                    continue
                s = sibling[i]
                if s >= 0 and not (bits >> s) & 1:
                    entry = nxt[entry]
                    continue
                states = trans.get((i, state))
                if states is None:
                    states = next_states(i, state)
                nb = bits | (1 << i)
                for k, s2 in enumerate(states):
                    if viable is not None and not viable(s2, nb):
                        continue
                    if fresh(nb, s2):
                        forced = read_only[i] and s2 == state
                        node = (i, s2, node)
                        calls.append((entry, state, states, k, forced, phase, node))
                        state, bits = s2, nb
                        # lift the call and its return out of the list (inline: hot path)
                        p, q = prv[entry], nxt[entry]
                        nxt[p] = q
                        if q >= 0:
                            prv[q] = p
                        r = ret_of[entry]
                        if r >= 0:
                            p, q = prv[r], nxt[r]
                            nxt[p] = q
                            if q >= 0:
                                prv[q] = p
                        if not is_info[i]:
                            remaining -= 1
                        entry = nxt[0]
                        phase = 0
                        break
                else:
                    entry = nxt[entry]
                continue
            if phase == 0 and info_all:
                phase, entry = 1, nxt[0]
                continue
            # a return of an op not yet linearized: this branch is dead, backtrack
            if len(calls) >= best_depth:
                best_depth = self._note(len(calls), node, entry, t)
            while True:
                if not calls:
                    return self._failure()
                f_entry, state, f_states, f_alt, f_forced, f_phase, _ = calls.pop()
                node = calls[-1][6] if calls else None
                i = op_of[f_entry]
                t.unlift(f_entry)
                if not is_info[i]:
                    remaining += 1
                bits &= ~(1 << i)
                pushed = False
                nb = bits | (1 << i)
                for k in range(f_alt + 1, len(f_states)):
                    s2 = f_states[k]
                    if viable is not None and not viable(s2, nb):
                        continue
                    if fresh(nb, s2):
                        node = (i, s2, node)
                        calls.append((f_entry, state, f_states, k, False, f_phase, node))
                        state, bits = s2, nb
                        t.lift(f_entry)
                        if not is_info[i]:
                            remaining -= 1
                        pushed = True
                        break
                if pushed:
                    entry, phase = nxt[0], 0
                    break
                if f_forced:
                    continue  # nothing is gained by not placing a read-only op here
                entry, phase = nxt[f_entry], f_phase
                break
        return None

    def _note(self, depth: int, node: _Node, blocked: int, t: _Tables) -> int:
        """Keep the (up to 3) longest partial linearizations for the counterexample; returns
        the depth worth noting next time."""
        if self.best and depth > self.best[0][3]:
            self.best.clear()
        pending = []
        e = t.nxt[0]
        while e >= 0 and e != blocked:
            if t.is_call[e]:
                pending.append(t.op_of[e])
            e = t.nxt[e]
        self.best.append((node, t.op_of[blocked], pending, depth))
        return depth + 1 if len(self.best) >= 3 else depth

    def _failure(self) -> Failure:
        if not self.best:
            return Failure(op=0, longest=[[]], pending=[])
        _, op, pending, _ = self.best[0]
        rest = [i for i in pending if i != op]
        return Failure(op=op, longest=[_unwind(b[0]) for b in self.best], pending=[op, *rest])


def _unwind(node: _Node) -> Linearization:
    out: Linearization = []
    while node is not None:
        out.append((node[0], node[1]))
        node = node[2]
    out.reverse()
    return out
