"""The model interface (porcupine's shape): a sequential specification the search replays."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from checkers.linear.operation import Input, Operation

#: A model state: any hashable value (tuples, frozensets, scalars), compared with ==.
State = Any


class Model:
    """A sequential object. Subclasses override `init` and `step` (or `step_all`).

    States must be hashable and compare equal exactly when they are the same state: the search
    caches (linearized set, state) pairs. A non-deterministic model overrides `step_all` to
    return every possible next state.
    """

    name: str = "model"
    #: The functions the model steps; an operation with another is bad input (None: any).
    functions: frozenset[str] | None = None
    #: Functions whose inputs the model constrains: `bad_input` judges each distinct one.
    checked_inputs: frozenset[str] = frozenset()
    #: Functions whose observed outputs the model constrains (`bad_output`).
    checked_outputs: frozenset[str] = frozenset()

    def bad_input(self, input: Input) -> str | None:
        """Why the model cannot take this input (f in `checked_inputs`), or None. Judge the
        value and the key each on its own: a long history's are checked once per distinct
        value and once per distinct key, not per pair."""
        return None

    def bad_output(self, f: str, output: Any) -> str | None:
        """Why the model cannot take this observed output (f in `checked_outputs`), or None."""
        return None

    def init(self) -> State:
        raise NotImplementedError

    def step(self, state: State, input: Input, output: Any) -> tuple[bool, State]:
        """Apply `input` in `state`; ok is False if `output` could not be observed there."""
        raise NotImplementedError

    def step_all(self, state: State, input: Input, output: Any) -> Sequence[State]:
        """Every state the operation may lead to (empty: it cannot happen in `state`)."""
        ok, new_state = self.step(state, input, output)
        return (new_state,) if ok else ()

    def read_only(self, input: Input, output: Any) -> bool:
        """True if the operation never changes the state (it may only observe it).

        The search linearizes a pending read-only operation as soon as the state allows it,
        which is always sound, and drops indeterminate read-only operations altogether.
        """
        return False

    def pruner(self, ops: list[Operation]) -> Callable[[State, int], bool] | None:
        """Optional look-ahead for one partition: a function of (state, linearized set as a
        bitmask over `ops` indices) that returns False only when no linearization can be
        completed from there (it must be sound: a wrong False is a wrong verdict)."""
        return None

    def simplify(self, ops: list[Operation]) -> list[Operation]:
        """Optional: one partition without the info ops that provably need never be placed
        (every linearization with them gives one without them)."""
        return ops

    def refute(self, ops: list[Operation]) -> tuple[int, str] | None:
        """Optional quick refutation of one partition without search: (index of an op that
        can never be linearized, why), or None. Must be sound."""
        return None

    def partition(self, ops: list[Operation]) -> list[list[Operation]]:
        """Independent sub-histories (P-compositionality); by default the whole history."""
        return [ops]

    def partition_key(self, ops: list[Operation]) -> Any:
        """The name of a partition in the evidence (the key for maps), or None."""
        return None

    def describe_operation(self, input: Input, output: Any) -> str:
        return f"{input.f}({input.value!r}) -> {output!r}"

    def describe_state(self, state: State) -> Any:
        """A JSON-serialisable rendering of a state for the counterexample."""
        return state if isinstance(state, (int, str, float, bool, type(None))) else repr(state)
