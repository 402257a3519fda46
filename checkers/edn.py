"""EDN for histories: a fast reader for the plain subset Jepsen histories use, backed by the
`edn_format` library for everything else (tags, characters, discards) and for writing.

Keywords and symbols read as their names (`:ok` -> "ok"), vectors and lists as lists, maps as
dicts, sets as frozensets, nil/true/false as None/True/False.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import edn_format

from checkers.linear.operation import TooDeep, freeze


class EDNError(ValueError):
    """Text that is not EDN; `offset` is where in the text, when known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class _Unsupported(Exception):
    """Valid EDN the fast reader does not handle: hand over to edn_format."""


#: Collections nested deeper than this are refused (histories nest a few levels).
MAX_DEPTH = 100
#: Where each top-level form starts, with where each form directly inside it starts.
Starts = list[tuple[int, list[int]]]

_TOKEN = re.compile(
    r"""(?P<ws>(?:[\s,]+|;[^\n]*)+)
      | (?P<open>\#\{|[\[{(])
      | (?P<close>[\]})])
      | (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<num>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=[\s,\[\]{}()";]|$))
      | (?P<kw>:[^\s,\[\]{}()"';#\\][^\s,\[\]{}()"';\\]*)
      | (?P<sym>[^\s,\[\]{}()"';#:\\\d][^\s,\[\]{}()"';\\]*)
    """,
    re.VERBOSE,
)
_SYMBOLS: dict[str, Any] = {"nil": None, "true": True, "false": False}
_CLOSER = {"[": "]", "(": ")", "{": "}", "#{": "}"}
#: EDN's string escapes are JSON's (and raw newlines are allowed in strings).
_STRING = json.JSONDecoder(strict=False)


def _close(opener: str, items: list[Any], pos: int) -> Any:
    if opener == "{":
        if len(items) % 2:
            raise EDNError("map with an odd number of forms", pos)
        return _map(items[0::2], items[1::2])
    if opener == "#{":
        return _set(items)
    return items


def _map(keys: list[Any], values: list[Any]) -> dict[Any, Any]:
    try:
        return dict(zip(keys, values, strict=True))
    except TypeError:  # a collection as a key: frozen, as the checker compares values
        return dict(zip(map(_frozen, keys), values, strict=True))


def _set(items: Any) -> frozenset[Any]:
    try:
        return frozenset(items)
    except TypeError:
        return frozenset(map(_frozen, items))


def _frozen(value: Any) -> Any:
    try:
        return freeze(value)
    except TooDeep as e:
        raise EDNError(str(e)) from None


def _number(tok: str, pos: int) -> int | float:
    if tok[-1] in "NM":
        raise _Unsupported
    if not any(c in tok for c in ".eE"):
        try:
            return int(tok)
        except ValueError:  # longer than Python converts
            raise EDNError(f"an integer of more than {sys.get_int_max_str_digits()} digits", pos) from None
    value = float(tok)
    if math.isinf(value):
        raise EDNError(f"number out of range: {tok[:30]}", pos)
    return value


def _fast_loads_all(text: str, starts: Starts | None) -> list[Any]:
    top: list[Any] = []
    stack: list[tuple[str, list[Any], int]] = []
    items = top
    inner: list[int] = []  # starts of the forms directly inside the current top-level form
    pos, end = 0, len(text)
    match = _TOKEN.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise _Unsupported
        kind = m.lastgroup
        tok = m.group()
        start, pos = pos, m.end()
        if kind == "ws":
            continue
        if kind == "open":
            if len(stack) >= MAX_DEPTH:
                raise EDNError(f"nested deeper than {MAX_DEPTH} levels", start)
            stack.append((tok, items, start))
            items = []
            continue
        if kind == "close":
            if not stack:
                raise EDNError(f"unexpected {tok!r}", start)
            opener, parent, start = stack.pop()
            if _CLOSER[opener] != tok:
                raise EDNError(f"{opener!r} closed by {tok!r}", pos - 1)
            value: Any = _close(opener, items, start)
            items = parent
        elif kind == "str":
            try:
                value = _STRING.decode(tok) if "\\" in tok else tok[1:-1]
            except json.JSONDecodeError:
                raise EDNError("bad escape in a string", start) from None
        elif kind == "num":
            value = _number(tok, start)
        elif kind == "kw":
            value = tok[1:]
        else:
            value = _SYMBOLS.get(tok, tok)
        items.append(value)
        if starts is not None:
            if not stack:
                starts.append((start, inner))
                inner = []
            elif len(stack) == 1:
                inner.append(start)
    if stack:
        raise EDNError(f"unclosed {stack[-1][0]!r} at end of input", stack[-1][2])
    return top


def _plain(value: Any) -> Any:
    """edn_format's data as plain Python, the way the fast reader returns it."""
    if isinstance(value, (edn_format.Keyword, edn_format.Symbol)):
        return value.name
    if isinstance(value, Mapping):
        return _map([_plain(k) for k in value], [_plain(v) for v in value.values()])
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    if isinstance(value, AbstractSet):
        return _set([_plain(v) for v in value])
    if isinstance(value, float) and not math.isfinite(value):
        raise EDNError(f"number out of range: {value}")
    return value


def loads_all(text: str, starts: Starts | None = None) -> list[Any]:
    """Every top-level form of `text`. Raises EDNError for text that is not EDN. With
    `starts`, fills it with the offsets where each form and each form directly inside it
    start, when the fast reader could read the text (else leaves it empty)."""
    try:
        return _fast_loads_all(text, starts)
    except _Unsupported:
        if starts is not None:
            starts.clear()
    try:
        return [_plain(v) for v in edn_format.loads_all(text)]
    except EDNError:
        raise
    except RecursionError:
        raise EDNError("nested too deeply") from None
    except Exception as e:  # edn_format raises several exception types for bad input
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        token = _LEX_TOKEN.fullmatch(first)
        if token is not None:  # its parser's way to say where
            raise EDNError(f"unexpected {token.group(1)!r}", int(token.group(2))) from None
        raise EDNError(first) from None


#: edn_format's syntax error: LexToken(TYPE,'text',line,offset).
_LEX_TOKEN = re.compile(r"LexToken\(\w+,'(.*)',\d+,(\d+)\)")


def _to_edn(value: Any, keyword_keys: bool) -> Any:
    if isinstance(value, Mapping):
        return {
            (edn_format.Keyword(str(k)) if keyword_keys and isinstance(k, str) else k): _to_edn(
                v, keyword_keys
            )
            for k, v in value.items()
        }
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, AbstractSet):
        return frozenset(_to_edn(v, keyword_keys) for v in value)
    if isinstance(value, Sequence):
        return [_to_edn(v, keyword_keys) for v in value]
    return value


def dumps(value: Any, keyword_keys: bool = True) -> str:
    """EDN text; string map keys become keywords (Jepsen's op maps) when `keyword_keys`."""
    return str(edn_format.dumps(_to_edn(value, keyword_keys)))
