"""The numpy template matcher: a line it takes is valid JSON holding exactly the values it
read; anything else (other spacing, order, escapes, numbers in other forms) is left alone."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checkers.safety.events import parse_event_bytes
from checkers.safety.templates import PADDING, find_template_lines, line_bounds

APPLY = ('{"ts":1700000000.25,"node":"n1","boot":3,"type":"apply","index":12345,"term":7,'
         '"digest":"0123456789abcdef","kind":"normal"}')
COMMIT = '{"ts":1700000000.5,"node":"n1","boot":3,"type":"commit","index":12340,"term":7}'


def match(lines: list[str | bytes]) -> tuple[dict[int, tuple[int, ...]], dict[int, tuple[int, ...]]]:
    """{line: (boot, index, term, digest)} of applies, {line: (boot, index, term)} of commits."""
    raw = b"".join((x.encode() if isinstance(x, str) else x) + b"\n" for x in lines)
    block = np.frombuffer(raw + bytes(PADDING), dtype=np.uint8)
    starts, ends = line_bounds(block, len(raw))
    applies, commits = find_template_lines(block, starts, ends)
    return (
        {int(k): (int(b), int(i), int(t), int(d)) for k, b, i, t, d in zip(
            applies.lines, applies.boot, applies.index, applies.term, applies.digest,
            strict=True)},
        {int(k): (int(b), int(i), int(t)) for k, b, i, t in zip(
            commits.lines, commits.boot, commits.index, commits.term, strict=True)},
    )


def test_the_node_form_is_read() -> None:
    applies, commits = match([APPLY, COMMIT, APPLY.replace('"apply"', '"role"')])
    assert applies == {0: (3, 12345, 7, 0x0123456789ABCDEF)}
    assert commits == {1: (3, 12340, 7)}


@pytest.mark.parametrize("line", [
    APPLY.replace(",", ", "),  # the stdlib's default spacing
    APPLY.replace('"index":12345,"term":7', '"term":7,"index":12345'),  # other key order
    APPLY.replace("12345", "012345"),  # leading zero: not JSON
    APPLY.replace("12345", "-12345"),
    APPLY.replace("12345", "12345.0"),
    APPLY.replace("12345", "1234567890123456"),  # wider than read here
    APPLY.replace(":7,", ":1e3,"),
    APPLY.replace("1700000000.25", "1.7e9"),
    APPLY.replace("1700000000.25", ".25"),
    APPLY.replace("1700000000.25", "1700000000."),
    APPLY.replace("1700000000.25", "17.00.25"),
    APPLY.replace("1700000000.25", "01700000000.25"),
    APPLY.replace("0123456789abcdef", "0123456789ABCDEF"),
    APPLY.replace("0123456789abcdef", "0123456789abcde"),
    APPLY.replace("0123456789abcdef", "0123456789abcdeg"),
    APPLY.replace('"n1"', '"n\\u0031"'),  # an escape
    APPLY.replace('"n1"', '"n\t1"'),  # a control byte
    APPLY.replace('"normal"', '"a-kind-longer-than-16"'),
    APPLY + " ",
    APPLY[:-1],  # torn
    APPLY.replace('"boot":3', '"boot":"3"'),
    COMMIT.replace("}", ',"x":1}'),
    COMMIT.replace('"index":12340', '"index":null'),
])
def test_anything_else_is_left_to_the_parser(line: str) -> None:
    assert match([line]) == ({}, {})
    assert match([COMMIT, line, APPLY])[0] == {2: (3, 12345, 7, 0x0123456789ABCDEF)}


def test_non_ascii_names_are_read() -> None:
    line = APPLY.replace('"n1"', '"nœud-1"').replace('"normal"', '"é"')
    assert match([line])[0] == {0: (3, 12345, 7, 0x0123456789ABCDEF)}


digests = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
names = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12)


@settings(max_examples=300, deadline=None)
@given(ts=st.one_of(st.floats(0, 4e9, allow_nan=False), st.integers(0, 10**12)),
       node=names, boot=st.integers(0, 10**12), index=st.integers(0, 10**16),
       term=st.integers(0, 10**16), digest=digests, kind=names,
       commit=st.booleans())
def test_read_values_are_the_json_values(ts: float, node: str, boot: int, index: int, term: int,
                                         digest: str, kind: str, commit: bool) -> None:
    ev: dict[str, Any] = {"ts": ts, "node": node, "boot": boot,
                          "type": "commit" if commit else "apply", "index": index, "term": term}
    if not commit:
        ev.update(digest=digest, kind=kind)
    line = json.dumps(ev, separators=(",", ":"), ensure_ascii=False)
    applies, commits = match([line])
    found = commits if commit else applies
    if found:  # taken: the values are exactly what a JSON parser reads
        parsed = orjson.loads(line)
        assert found[0][:3] == (parsed["boot"], parsed["index"], parsed["term"])
        if not commit:
            assert found[0][3] == int(parsed["digest"], 16)
    else:  # left alone only for what the matcher does not read: wide fields, escapes
        too_wide = (max(boot, index, term) >= 10**15 or len(json.dumps(ts)) > 23
                    or "e" in json.dumps(ts))
        escaped = any(ord(c) < 32 or c in '"\\' for c in node + ("" if commit else kind))
        too_long = len(node.encode()) > 15 or (not commit and len(kind.encode()) > 15)
        assert too_wide or escaped or too_long


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=160))
def test_any_bytes_taken_are_valid_json(noise: bytes) -> None:
    """Mangled node lines: whatever the matcher takes must parse (as the reader parses: bytes
    that are not UTF-8 become U+FFFD) to what it read."""
    for base in (APPLY.encode(), COMMIT.encode()):
        cut = len(noise) % (len(base) + 1)
        line = (base[:cut] + noise[: len(noise) // 2] + base[cut:]).replace(b"\n", b"")
        applies, commits = match([line])
        for found in (applies, commits):
            if found:
                parsed = parse_event_bytes(line)
                assert found[0][:3] == (parsed["boot"], parsed["index"], parsed["term"])
