"""EDN for histories: a fast reader for the plain subset Jepsen histories use, backed by the
`edn_format` library for everything else (tags, characters, discards) and for writing.

Keywords and symbols read as their names (`:ok` -> "ok"), vectors and lists as lists, maps as
dicts, sets as frozensets, nil/true/false as None/True/False.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import edn_format


class EDNError(ValueError):
    """Text that is not EDN; the message says where."""


class _Unsupported(Exception):
    """Valid EDN the fast reader does not handle: hand over to edn_format."""


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


def _close(opener: str, items: list[Any], pos: int) -> Any:
    if opener == "{":
        if len(items) % 2:
            raise EDNError(f"map with an odd number of forms ending at offset {pos}")
        try:
            return {items[i]: items[i + 1] for i in range(0, len(items), 2)}
        except TypeError:
            raise _Unsupported from None  # a collection as a key
    if opener == "#{":
        try:
            return frozenset(items)
        except TypeError:
            raise _Unsupported from None
    return items


def _fast_loads_all(text: str) -> list[Any]:
    top: list[Any] = []
    stack: list[tuple[str, list[Any]]] = []
    items = top
    pos, end = 0, len(text)
    match = _TOKEN.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise _Unsupported
        kind = m.lastgroup
        tok = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "open":
            stack.append((tok, items))
            items = []
            continue
        if kind == "close":
            if not stack:
                raise EDNError(f"unexpected {tok!r} at offset {pos - 1}")
            opener, parent = stack.pop()
            if _CLOSER[opener] != tok:
                raise EDNError(f"{opener!r} closed by {tok!r} at offset {pos - 1}")
            parent.append(_close(opener, items, pos))
            items = parent
            continue
        if kind == "str":
            value: Any = json.loads(tok) if "\\" in tok else tok[1:-1]
        elif kind == "num":
            if tok[-1] in "NM":
                raise _Unsupported
            value = float(tok) if any(c in tok for c in ".eE") else int(tok)
        elif kind == "kw":
            value = tok[1:]
        else:
            value = _SYMBOLS.get(tok, tok)
        items.append(value)
    if stack:
        raise EDNError(f"unclosed {stack[-1][0]!r} at end of input")
    return top


def _plain(value: Any) -> Any:
    """edn_format's data as plain Python, the way the fast reader returns it."""
    if isinstance(value, (edn_format.Keyword, edn_format.Symbol)):
        return value.name
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    if isinstance(value, AbstractSet):
        return frozenset(_plain(v) for v in value)
    return value


def loads_all(text: str) -> list[Any]:
    """Every top-level form of `text`. Raises EDNError for text that is not EDN."""
    try:
        return _fast_loads_all(text)
    except _Unsupported:
        pass
    try:
        return [_plain(v) for v in edn_format.loads_all(text)]
    except Exception as e:  # edn_format raises several exception types for bad input
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EDNError(first) from None


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
