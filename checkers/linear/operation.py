"""One client operation of a history: a call (input) and what was observed (output)."""

from __future__ import annotations

import json
import reprlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

OpType = Literal["ok", "info", "fail"]


class _Unknown:
    """The output of an operation whose completion was not observed (Jepsen's `info`).
    Compared by identity, so copies are the one instance."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __copy__(self) -> _Unknown:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unknown:
        return self


#: Output of an indeterminate operation: any result is possible, including "never happened".
UNKNOWN: Any = _Unknown()


@dataclass(frozen=True)
class Input:
    """What a client asked for: the function, its argument and (for maps) the key."""

    f: str
    value: Any = None
    key: Any = None


@dataclass
class Operation:
    """An invocation paired with its completion.

    `type` is Jepsen's: "ok" took effect exactly once between `invoke` and `complete`; "info"
    may take effect at any time after `invoke`, or never (it stays open to the end); "fail"
    certainly did not take effect (the checker drops it). `output` is what the completion
    observed (UNKNOWN for info); for a cas it is True (swapped) or False (the compare was
    evaluated and did not match, an observation porcupine's etcd model keeps).
    """

    id: int
    process: Any
    f: str
    value: Any
    output: Any
    invoke: int
    complete: int | None
    type: OpType
    key: Any = None
    #: Order positions for the search: real-time order of call and return events.
    call_pos: float = 0.0
    return_pos: float = float("inf")
    #: Where the completion record was (also for info ops, whose return_pos is infinite).
    done_pos: float | None = None

    @cached_property
    def input(self) -> Input:
        return Input(self.f, self.value, self.key)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "process": self.process,
            "f": self.f,
            "value": self.value,
            "output": None if self.output is UNKNOWN else self.output,
            "invoke": self.invoke,
            "complete": self.complete,
            "type": self.type,
        }


#: Collections nested deeper than this in one value are refused (no history needs them, and
#: hashing, comparing and printing such a value recurses as deep).
MAX_NESTING = 100


class TooDeep(ValueError):
    """A value with collections nested deeper than MAX_NESTING."""


def freeze(value: Any, _depth: int = 0) -> Any:
    """Lists become tuples and dicts item tuples sorted by key, so values are hashable.
    Raises TooDeep for a value nested deeper than MAX_NESTING."""
    if isinstance(value, (list, tuple)):
        _deeper(_depth)
        return tuple(freeze(v, _depth + 1) for v in value)
    if isinstance(value, dict):
        _deeper(_depth)
        # by key only: two keys may print alike (EDN's 1 and "1"), their values not compare
        return tuple(sorted(((str(k), freeze(v, _depth + 1)) for k, v in value.items()), key=_first))
    if isinstance(value, (set, frozenset)):
        _deeper(_depth)
        return frozenset(freeze(v, _depth + 1) for v in value)
    return value


def _deeper(depth: int) -> None:
    if depth >= MAX_NESTING:
        raise TooDeep(f"value nested deeper than {MAX_NESTING} levels")


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def show(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: as JSON (tuples as lists), cut at `limit`."""
    try:
        text = json.dumps(value, default=_jsonable)
    except (TypeError, ValueError, RecursionError):
        text = reprlib.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return str(value)
