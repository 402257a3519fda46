"""The register engine: just-in-time linearization on integer-coded registers.

For read / write / cas / delete registers (`CasRegister`, `KV` per key) this is the search
`check` runs first on every partition; the generic engines (`search.py`, `frontier.py`) only see
what it cannot decide. Values are small integer codes, so a model step is a comparison.

Call and return events are replayed in real-time order (calls first at equal times). The
frontier holds every configuration (which pending ok operations are already linearized, state,
which crashed operations were used) consistent with the history so far; operations are
linearized only when a return forces it (knossos's "linear" algorithm, after Lowe). A
partition whose operations do not overlap keeps a single configuration and costs one
comparison per operation, which is what most of a long run looks like.

Crashed (info) operations may take effect at any time after their call, or never, so they are
resources rather than events: they are placed only where an ok operation cannot be placed
otherwise, as a chain right before it. Placing a crashed op earlier never helps (its effect
would be overwritten, or it could as well be placed later), so this loses no linearization:
- a read (or a failed-cas observation) the state allows, and a write or delete, never need a
  chain; a cas needs one only to reach its expected value;
- a minimal chain is a run of crashed cas ops from the current state, or a crashed write (or
  delete) followed by such a run: everything before the last write would be overwritten;
- a crashed cas straight from the current state to the target makes every other chain
  redundant, and an unused crashed write of the target every chain starting with another
  write: what is left unused can stand in for what was used later, not the other way round;
- crashed ops with the same function and value are interchangeable: the first unused one is
  taken.
A configuration that used a superset of another's crashed ops (same linearized set and state)
is pruned.

Over a long partition the crashed ops pile up and the configurations that used different ones
never merge, so the replay runs twice at most: first keeping a beam of the BEAM configurations
that used the fewest crashed ops, with only the shortest chain per placement (a configuration
that survives to the end is a linearization: "linearizable" is certain); only if the beam dies
out, which proves nothing, the exact replay decides. The engine gives up (GiveUp) past a
budget of configurations or the deadline, and the generic searches take over.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass

#: Operation kinds of the engine.
READ, WRITE, CAS, DELETE = 0, 1, 2, 3
#: Output codes besides values (as in checkers.linear.table).
ANY, SWAPPED, NOT_SWAPPED = -1, -2, -3
#: Configurations one closure may visit before the engine gives up.
MAX_CLOSURE = 50_000
#: Chains one placement may try before the engine gives up.
MAX_CHAIN_STEPS = 20_000
#: Configurations the first pass keeps (see RegisterEngine.steps).
BEAM = 16
#: Chains of crashed ops the first pass tries for one placement (the shortest).
CHAINS_IN_BEAM = 1
#: Steps of the exact pass after which a partition counts as hard.
STRUGGLING_AFTER = 16 * 1024
_BEAM_LOST = object()


class GiveUp(Exception):
    """The engine's budget ran out (or the deadline passed): no verdict from it."""


@dataclass
class RegisterOps:
    """One partition as the engine sees it (lists, for fast indexing in the loops).

    kind: READ/WRITE/CAS/DELETE; a: the written value, or a cas's expected value, or a read's
    expected output (ANY: any value); b: a cas's new value; out: for a cas SWAPPED, NOT_SWAPPED
    or ANY (crashed); info: crashed. Ops are indexed as in the partition.
    """

    kind: list[int]
    a: list[int]
    b: list[int]
    out: list[int]
    info: list[bool]
    events: list[int]  # op * 2 (call) or op * 2 + 1 (return of an ok op), in real-time order
    initial: int
    none: int


@dataclass
class Refuted:
    """Where the engine's frontier emptied: the op whose return could not be linearized,
    and the ok ops still pending then."""

    op: int
    pending: list[int]


def check_register(
    ops: RegisterOps, deadline: float | None = None, max_closure: int = MAX_CLOSURE
) -> Refuted | None:
    """None if the partition is linearizable, else where it failed; raises GiveUp."""
    steps = RegisterEngine(ops, deadline, max_closure).steps()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: Refuted | None = done.value
            return result


class RegisterEngine:
    """`steps()` is the engine as a generator that yields every 1024 steps (a return, or a
    configuration of a closure), so that partitions can take turns as the searches do;
    `widest` is the largest frontier so far, `struggling` tells a hard partition."""

    def __init__(
        self, ops: RegisterOps, deadline: float | None = None, max_closure: int = MAX_CLOSURE
    ) -> None:
        self.ops = ops
        self.deadline = deadline
        self.max_closure = max_closure
        self.ticks = 0
        self.widest = 1
        self.exact_from = -1  # ticks when the exact pass started (the beam died out)
        self.chain_limit: int | None = None  # chains per placement (the beam pass)
        self.lossy = False  # this pass dropped configurations or chains
        # crashed ops as resources, in groups of interchangeable ones (per pass)
        self.writes: dict[int, list[int]] = {}  # value -> crashed writes/deletes of it (bits)
        self.cas_into: dict[int, list[tuple[int, list[int]]]] = {}  # b -> [(a, bits)]
        self._cas_group: dict[tuple[int, int], list[int]] = {}

    @property
    def struggling(self) -> bool:
        """The exact pass has run for a while: a hard partition."""
        return self.exact_from >= 0 and self.ticks - self.exact_from > STRUGGLING_AFTER

    # ------------------------------------------------------------------ resources

    def _add_resource(self, i: int, bit: int) -> None:
        o = self.ops
        k = o.kind[i]
        if k == WRITE or k == DELETE:
            v = o.a[i] if k == WRITE else o.none
            self.writes.setdefault(v, []).append(bit)
        elif k == CAS and o.a[i] != o.b[i]:  # a crashed cas that changes nothing is never needed
            key = (o.a[i], o.b[i])
            group = self._cas_group.get(key)
            if group is None:
                group = self._cas_group[key] = []
                self.cas_into.setdefault(o.b[i], []).append((o.a[i], group))
            group.append(bit)

    @staticmethod
    def _first_unused(group: list[int], used: int) -> int:
        for bit in group:
            if not used & bit:
                return bit
        return 0

    def _chains_to(self, s: int, used: int, target: int) -> list[int]:
        """Used-sets after every minimal chain of crashed ops taking state s to `target`
        that no other such chain makes redundant; shortest first, and in the beam pass only
        the first CHAINS_IN_BEAM."""
        first_unused = self._first_unused
        writes, cas_into = self.writes, self.cas_into
        for a, group in cas_into.get(target, ()):
            if a == s:
                bit = first_unused(group, used)
                if bit:
                    # one cas from here: any other chain (a write of the target, a longer
                    # run of cas) left unused can stand in for it later, not the other way
                    return [used | bit]
        limit = self.chain_limit
        out: list[int] = []
        direct = writes.get(target)
        write_bit = first_unused(direct, used) if direct else 0
        if write_bit:
            out.append(used | write_bit)
        # backwards from the target over crashed cas ops, along simple paths of states, one
        # length at a time; once a crashed write could start the chain, longer chains starting
        # with a write are not tried (that write stands in for them), only runs of cas from s
        layer: list[tuple[int, int, frozenset[int], bool]] = [
            (target, used, frozenset((target,)), not write_bit)
        ]
        steps = 0
        while layer and (limit is None or len(out) < limit):
            deeper: list[tuple[int, int, frozenset[int], bool]] = []
            for x, u, seen, want_write in layer:
                steps += 1
                if steps > MAX_CHAIN_STEPS:
                    raise GiveUp("too many chains of crashed operations")
                for a, group in cas_into.get(x, ()):
                    bit = first_unused(group, u)
                    if not bit or a in seen:
                        continue
                    u2 = u | bit
                    if a == s:
                        out.append(u2)
                        continue  # a longer chain through s again is not minimal
                    more = want_write
                    if want_write:
                        ws = writes.get(a)
                        wb = first_unused(ws, u2) if ws else 0
                        if wb:
                            out.append(u2 | wb)
                            more = False
                    deeper.append((a, u2, seen | {a}, more))
            layer = deeper
        if limit is not None and (layer or len(out) > limit):
            self.lossy = True  # chains left untried: a dead end here proves nothing
            return out[:limit]
        return out

    def _chains_away(self, s: int, used: int) -> list[tuple[int, int]]:
        """(state, used-set) after one crashed op taking state s elsewhere (for a failed-cas
        observation, which any other state satisfies: one op is always enough)."""
        out: list[tuple[int, int]] = []
        for b, sources in self.cas_into.items():
            for a, group in sources:
                if a == s and b != s:
                    bit = self._first_unused(group, used)
                    if bit:
                        out.append((b, used | bit))
        for v, group in self.writes.items():
            if v != s:
                bit = self._first_unused(group, used)
                if bit:
                    out.append((v, used | bit))
        if self.chain_limit is not None and len(out) > self.chain_limit:
            self.lossy = True
            return out[:self.chain_limit]
        return out

    # ------------------------------------------------------------------ one op

    def _allowed(self, i: int, s: int) -> bool:
        o = self.ops
        k = o.kind[i]
        if k == READ:
            return o.a[i] == s
        if k == CAS:
            return o.a[i] == s if o.out[i] == SWAPPED else o.a[i] != s
        return True

    def _after(self, i: int, s: int) -> int:
        o = self.ops
        k = o.kind[i]
        if k == WRITE:
            return o.a[i]
        if k == DELETE:
            return o.none
        if k == CAS and o.out[i] == SWAPPED:
            return o.b[i]
        return s

    def _placements(self, i: int, s: int, used: int) -> list[tuple[int, int]]:
        """(state after, used-set) for every way to place ok op i in state s: directly, or
        after a chain of crashed ops when it cannot be placed directly."""
        if self._allowed(i, s):
            return [(self._after(i, s), used)]
        o = self.ops
        k = o.kind[i]
        if k == READ:
            return [(s2, u) for s2, u in ((o.a[i], u) for u in self._chains_to(s, used, o.a[i]))]
        if o.out[i] == SWAPPED:
            return [(o.b[i], u) for u in self._chains_to(s, used, o.a[i])]
        return self._chains_away(s, used)  # a failed-cas observation: leave state a

    # ------------------------------------------------------------------ the replay

    def _pause(self) -> bool:
        """Count a step; True every 1024 (time to yield). Raises GiveUp past the deadline."""
        self.ticks += 1
        if self.ticks & 1023:
            return False
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise GiveUp("time limit")
        return True

    def steps(self) -> Generator[None, None, Refuted | None]:
        """A pass keeping at most BEAM configurations (those that used the fewest crashed
        ops): a configuration left at the end is a linearization, so "linearizable" is
        certain. If the beam dies out, the exact pass (every configuration) decides."""
        self.chain_limit = CHAINS_IN_BEAM
        outcome = yield from self._replay(BEAM)
        if outcome is _BEAM_LOST:
            self.exact_from = self.ticks
            self.chain_limit = None
            outcome = yield from self._replay(None)
        assert outcome is None or isinstance(outcome, Refuted)
        return outcome

    def _replay(self, beam: int | None) -> Generator[None, None, Refuted | object | None]:
        o = self.ops
        kind, a_of, b_of, out_of, info = o.kind, o.a, o.b, o.out, o.info
        self.writes, self.cas_into, self._cas_group = {}, {}, {}
        self.lossy = False
        # the frontier: (linearized pending set as slot bits, state) -> used-sets (antichain)
        frontier: dict[tuple[int, int], list[int]] = {(0, o.initial): [0]}
        single = True  # the frontier is {(0, state): [used]}: the fast path
        state, used = o.initial, 0
        slot_of: dict[int, int] = {}
        pending: list[int] = []  # ok ops called, not returned, in call order
        free_slots: list[int] = []
        next_slot = 0
        next_info_bit = 1
        pause = self._pause
        for ev in o.events:
            i = ev >> 1
            if not ev & 1:  # a call
                if info[i]:
                    self._add_resource(i, next_info_bit)
                    next_info_bit <<= 1
                    continue
                if kind[i] == READ and a_of[i] == ANY:
                    continue  # a read that observes nothing: always placeable, changes nothing
                slot = free_slots.pop() if free_slots else next_slot
                if slot == next_slot:
                    next_slot += 1
                slot_of[i] = slot
                pending.append(i)
                continue
            if i not in slot_of:
                continue  # the return of an op that observes nothing
            if pause():
                yield
            if single and len(pending) == 1:
                # the only pending op returns: place it (inline: the hot path)
                k = kind[i]
                a = a_of[i]
                if k == READ:
                    ok = a == state
                elif k == WRITE:
                    ok, state = True, a
                elif k == CAS:
                    if out_of[i] == SWAPPED:
                        ok = a == state
                        if ok:
                            state = b_of[i]
                    else:
                        ok = a != state
                else:
                    ok, state = True, o.none
                if ok:
                    pending.clear()
                    free_slots.append(slot_of.pop(i))
                    continue
                frontier = {(0, state): [used]}
            elif single:
                frontier = {(0, state): [used]}
            frontier = yield from self._closure(frontier, i, pending, slot_of)
            if not frontier:
                return _BEAM_LOST if self.lossy else Refuted(i, [p for p in pending if p != i])
            pending.remove(i)
            free_slots.append(slot_of.pop(i))
            single = False
            width = sum(map(len, frontier.values()))
            if width > self.widest:
                self.widest = width
            if beam is not None and width > beam:
                frontier, self.lossy = _narrow(frontier, beam), True
            if len(frontier) == 1:
                ((m, s), useds), = frontier.items()
                if m == 0 and len(useds) == 1:
                    single, state, used = True, s, useds[0]
        return None

    def _closure(
        self,
        frontier: dict[tuple[int, int], list[int]],
        x: int,
        pending: Sequence[int],
        slot_of: dict[int, int],
    ) -> Generator[None, None, dict[tuple[int, int], list[int]]]:
        """Every configuration reachable by a sequence of pending ops ending with op x."""
        o = self.ops
        bx = 1 << slot_of[x]
        new: dict[tuple[int, int], list[int]] = {}
        if len(pending) == 1:  # x alone: place it in each configuration, nothing else to order
            placements = self._placements
            for (m, s), us in frontier.items():
                for u in us:
                    if m & bx:
                        _insert(new, (0, s), u)
                        continue
                    for s2, u2 in placements(x, s, u):
                        _insert(new, (0, s2), u2)
            return new
        ro = [(p, 1 << slot_of[p]) for p in pending
              if o.kind[p] == READ or (o.kind[p] == CAS and o.out[p] == NOT_SWAPPED)]
        others = [(p, 1 << slot_of[p]) for p in pending]
        visited: dict[tuple[int, int], list[int]] = {}
        allowed, placements = self._allowed, self._placements
        stack = [(m, s, u) for (m, s), us in frontier.items() for u in us]
        steps = 0
        while stack:
            steps += 1
            if steps > self.max_closure:
                raise GiveUp(f"more than {self.max_closure} configurations at one return")
            if self._pause():
                yield
            m, s, u = stack.pop()
            # read-only ops the state allows are placed at once: that never loses anything
            for p, bp in ro:
                if not m & bp and allowed(p, s):
                    m |= bp
            if m & bx:
                _insert(new, (m & ~bx, s), u)
                continue
            if not _insert(visited, (m, s), u):
                continue
            for p, bp in others:
                if m & bp:
                    continue
                for s2, u2 in placements(p, s, u):
                    stack.append((m | bp, s2, u2))
        return new


def _narrow(frontier: dict[tuple[int, int], list[int]], beam: int) -> dict[tuple[int, int], list[int]]:
    """The `beam` configurations that used the fewest crashed ops (then placed the fewest
    pending ops early)."""
    configs = sorted(
        ((u.bit_count(), m.bit_count(), u, m, s) for (m, s), us in frontier.items() for u in us)
    )[:beam]
    out: dict[tuple[int, int], list[int]] = {}
    for _, _, u, m, s in configs:
        out.setdefault((m, s), []).append(u)
    return out


def _insert(table: dict[tuple[int, int], list[int]], key: tuple[int, int], used: int) -> bool:
    """Add `used` to the antichain of used-sets at `key`; False if a subset of it is there."""
    known = table.get(key)
    if known is None:
        table[key] = [used]
        return True
    for k in known:
        if k & ~used == 0:
            return False
    known[:] = [k for k in known if used & ~k]
    known.append(used)
    return True
