"""The bundled models: registers, key-value maps, transactions, mutex, set."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from checkers.linear.model import Model, State
from checkers.linear.operation import UNKNOWN, Input, Operation, show


class CasRegister(Model):
    """A register with read / write / cas (and delete, which makes it absent = None).

    A nil read observes absence when the register can be absent (initial nil, or deletes);
    for a register with a non-nil initial value a nil read carries no information, as in
    knossos. A cas output is True (swapped), False (compare evaluated, did not match) or
    UNKNOWN (swaps exactly when the compare matches, at whatever point it is placed).
    """

    name = "cas-register"
    functions = frozenset({"read", "write", "cas", "delete"})
    checked_inputs = frozenset({"cas"})

    def __init__(self, initial: Any = None) -> None:
        self.initial = initial

    def bad_input(self, input: Input) -> str | None:
        v = input.value
        if input.f == "cas" and not (isinstance(v, (tuple, list)) and len(v) == 2):
            return f"cas value must be [expected, new], got {show(v)}"
        return None

    def init(self) -> State:
        return self.initial

    def step(self, state: State, input: Input, output: Any) -> tuple[bool, State]:
        f = input.f
        if f == "read":
            if output is UNKNOWN or (output is None and self.initial is not None):
                return True, state
            return state == output, state
        if f == "write":
            return True, input.value
        if f == "cas":
            expected, new = input.value
            if output is UNKNOWN:
                return True, new if state == expected else state
            if output:
                return state == expected, new
            return state != expected, state
        if f == "delete":
            return True, None
        raise ValueError(f"{self.name}: unsupported operation f={f!r}")

    def read_only(self, input: Input, output: Any) -> bool:
        return input.f == "read" or (input.f == "cas" and output is False)

    def simplify(self, ops: list[Operation]) -> list[Operation]:
        """Drop crashed writes, cas and deletes whose resulting value nobody observes (no read
        returns it, no cas expects it): after one of them only a blind write can succeed, so
        leaving it out (with any crashed cas it would have disabled) keeps a linearization
        valid. Not with failed-cas observations, which any other value satisfies."""
        if any(o.f == "cas" and o.output is False for o in ops):
            return ops
        try:
            for _ in range(3):  # dropping a crashed cas may unobserve its expected value
                observed: set[Any] = set()
                for o in ops:
                    if o.f == "read" and o.output is not UNKNOWN and (o.output is not None or self.initial is None):
                        observed.add(o.output)
                    elif o.f == "cas":
                        observed.add(o.value[0])
                kept = [o for o in ops if o.type != "info" or self._result(o) in observed]
                if len(kept) == len(ops):
                    break
                ops = kept
        except TypeError:  # unhashable values
            pass
        return ops

    @staticmethod
    def _result(o: Operation) -> Any:
        return o.value if o.f == "write" else o.value[1] if o.f == "cas" else None

    def refute(self, ops: list[Operation]) -> tuple[int, str] | None:
        """A read (or a swapping cas) of a value that no operation could ever have put in
        the register: no search needed, however many crashed ops are open."""
        try:
            producible = {self.initial}
            for o in ops:
                if o.f == "write":
                    producible.add(o.value)
                elif o.f == "cas":
                    producible.add(o.value[1])
                elif o.f == "delete":
                    producible.add(None)
            for i, o in enumerate(ops):
                if o.type != "ok":
                    continue
                if o.f == "read" and o.output is not UNKNOWN and o.output not in producible:
                    if o.output is None and self.initial is not None:
                        continue  # knossos: a nil read carries no information here
                    return i, f"read {o.output!r} (op {o.id}): no operation ever writes that value"
                if o.f == "cas" and o.output is True and o.value[0] not in producible:
                    return i, f"cas {o.value!r} (op {o.id}) swapped, but no operation ever writes {o.value[0]!r}"
        except TypeError:  # unhashable values: no quick answer
            return None
        return None

    def describe_operation(self, input: Input, output: Any) -> str:
        shown = "?" if output is UNKNOWN else output
        if input.f == "read":
            return f"read() -> {shown!r}"
        if input.f == "cas":
            expected, new = input.value
            return f"cas({expected!r}, {new!r}) -> {shown!r}"
        if input.f == "write":
            return f"write({input.value!r})"
        return f"{input.f}()"


class Register(CasRegister):
    name = "register"


class KV(CasRegister):
    """faultline's raftkv / etcd map: one register per key (read null = key missing)."""

    name = "kv"

    def __init__(self, initial: Any = None) -> None:
        super().__init__(initial)

    def partition(self, ops: list[Operation]) -> list[list[Operation]]:
        return _by_key(ops)

    def partition_key(self, ops: list[Operation]) -> Any:
        return ops[0].key if ops else None


#: How many of the earliest pending gets the kv look-ahead checks per step.
LOOKAHEAD = 8


class PorcupineKV(Model):
    """porcupine's kv model: get / put / append on string values, every key initially ""."""

    name = "porcupine-kv"
    functions = frozenset({"get", "put", "append"})
    checked_inputs = functions
    checked_outputs = frozenset({"get"})

    def __init__(self, initial: str = "", partitioned: bool = True) -> None:
        self.initial = initial
        self.partitioned = partitioned

    def bad_input(self, input: Input) -> str | None:
        if not isinstance(input.key, str):
            return f"key must be a string, got {show(input.key)}"
        if input.f != "get" and not isinstance(input.value, str):
            return f"{input.f} value must be a string, got {show(input.value)}"
        return None

    def bad_output(self, f: str, output: Any) -> str | None:
        if not isinstance(output, str):
            return f"{f} output must be a string, got {show(output)}"
        return None

    def init(self) -> State:
        return self.initial if self.partitioned else ()

    def step(self, state: State, input: Input, output: Any) -> tuple[bool, State]:
        if not self.partitioned:
            return self._step_map(state, input, output)
        f = input.f
        if f == "get":
            return output is UNKNOWN or state == output, state
        if f == "put":
            return True, input.value
        if f == "append":
            return True, str(state) + str(input.value)
        raise ValueError(f"{self.name}: unsupported operation f={f!r}")

    def _step_map(self, state: Any, input: Input, output: Any) -> tuple[bool, State]:
        values = dict(state)
        current = values.get(input.key, self.initial)
        if input.f == "get":
            return output is UNKNOWN or current == output, state
        if input.f == "put":
            values[input.key] = input.value
        elif input.f == "append":
            values[input.key] = str(current) + str(input.value)
        else:
            raise ValueError(f"{self.name}: unsupported operation f={input.f!r}")
        return True, tuple(sorted(values.items()))

    def read_only(self, input: Input, output: Any) -> bool:
        return input.f == "get"

    def pruner(self, ops: list[Operation]) -> Callable[[State, int], bool] | None:
        """Appends only extend a value, so a get not yet linearized can still be matched only
        if its value extends the key's current one, or some put of that key not yet
        linearized could start it afresh. The earliest such gets are checked, so a wrong
        append order dies at once."""
        puts = [(i, o.key, o.value) for i, o in enumerate(ops) if o.f == "put"]
        get_bits = 0
        rescue: dict[int, int] = {}  # get -> puts of its key whose value starts its value
        wanted: dict[int, tuple[Any, str]] = {}
        for i, o in enumerate(ops):
            if o.f == "get" and isinstance(o.output, str):
                get_bits |= 1 << i
                wanted[i] = (o.key, o.output)
                rescue[i] = sum(
                    1 << j for j, k, v in puts
                    if (self.partitioned or k == o.key) and o.output.startswith(str(v))
                )
        if not get_bits:
            return None
        partitioned, initial = self.partitioned, self.initial

        def viable(state: State, bits: int) -> bool:
            todo = get_bits & ~bits
            values = None if partitioned else dict(state)
            for _ in range(LOOKAHEAD):
                if not todo:
                    return True
                low = todo & -todo
                i = low.bit_length() - 1
                todo ^= low
                if rescue[i] & ~bits:
                    continue
                key, out = wanted[i]
                current = state if values is None else values.get(key, initial)
                if not out.startswith(current):
                    return False
            return True

        return viable

    def partition(self, ops: list[Operation]) -> list[list[Operation]]:
        return _by_key(ops) if self.partitioned else [ops]

    def partition_key(self, ops: list[Operation]) -> Any:
        return ops[0].key if ops and self.partitioned else None

    def describe_operation(self, input: Input, output: Any) -> str:
        if input.f == "get":
            return f"get({input.key!r}) -> {'?' if output is UNKNOWN else output!r}"
        return f"{input.f}({input.key!r}, {input.value!r})"

    def describe_state(self, state: State) -> Any:
        return state if self.partitioned else dict(state)


class MultiRegister(Model):
    """knossos's multi-register: `txn` of [read k v] / [write k v] micro-operations."""

    name = "multi-register"
    functions = frozenset({"txn"})
    checked_inputs = functions
    checked_outputs = functions

    def __init__(self, **initial: Any) -> None:
        self.initial = dict(initial)

    def bad_input(self, input: Input) -> str | None:
        return self._bad_txn(input.value, "value")

    def bad_output(self, f: str, output: Any) -> str | None:
        return self._bad_txn(output, "output")

    @staticmethod
    def _bad_txn(micro: Any, what: str) -> str | None:
        if isinstance(micro, (tuple, list)) and all(
            isinstance(m, (tuple, list)) and len(m) == 3 and m[0] in ("read", "write") for m in micro
        ):
            return None
        return f"txn {what} must be a list of [f key value] with f read or write, got {show(micro)}"

    def init(self) -> State:
        return tuple(sorted(self.initial.items()))

    def step(self, state: State, input: Input, output: Any) -> tuple[bool, State]:
        values = dict(state)
        micro = input.value if output is UNKNOWN else output
        changed = False
        for f, k, v in micro:
            if f == "read":
                if output is not UNKNOWN and v is not None and values.get(k) != v:
                    return False, state
            elif f == "write":
                values[k] = v
                changed = True
            else:
                raise ValueError(f"{self.name}: unsupported micro-operation {f!r}")
        return True, tuple(sorted(values.items())) if changed else state

    def read_only(self, input: Input, output: Any) -> bool:
        return all(m[0] == "read" for m in input.value)

    def describe_state(self, state: State) -> Any:
        return dict(state)


class Mutex(Model):
    """A lock: acquire succeeds only when free, release only when held."""

    name = "mutex"
    functions = frozenset({"acquire", "release"})

    def init(self) -> State:
        return False

    def step(self, state: State, input: Input, output: Any) -> tuple[bool, State]:
        if input.f == "acquire":
            return not state, True
        if input.f == "release":
            return bool(state), False
        raise ValueError(f"{self.name}: unsupported operation f={input.f!r}")


class SetModel(Model):
    """A grow-only set: add(v), read -> every element added so far."""

    name = "set"
    functions = frozenset({"add", "read"})
    checked_outputs = frozenset({"read"})

    def bad_output(self, f: str, output: Any) -> str | None:
        if not isinstance(output, (tuple, list, frozenset, set)):
            return f"read output must be a collection, got {show(output)}"
        return None

    def init(self) -> State:
        return frozenset()

    def step(self, state: State, input: Input, output: Any) -> tuple[bool, State]:
        if input.f == "add":
            return True, state | {input.value}
        if input.f == "read":
            return output is UNKNOWN or state == frozenset(output), state
        raise ValueError(f"{self.name}: unsupported operation f={input.f!r}")

    def read_only(self, input: Input, output: Any) -> bool:
        return input.f == "read"

    def describe_state(self, state: State) -> Any:
        return sorted(state, key=repr)


def _by_key(ops: list[Operation]) -> list[list[Operation]]:
    groups: dict[Any, list[Operation]] = defaultdict(list)
    for op in ops:
        groups[op.key].append(op)
    return list(groups.values())
