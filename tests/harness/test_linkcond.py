"""Link conditions as plain data: validation, combination in series, the draws of a shaper,
and the backlog that keeps (or, for reordered messages, does not keep) the order of reading."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.net.linkcond import Backlog, LinkConditions, Shaper, combine


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"delay_ms": -1.0}, "delay_ms must be a finite number >= 0"),
        ({"jitter_ms": float("inf")}, "jitter_ms must be a finite number >= 0"),
        ({"loss": 1.5}, "loss must be a probability"),
        ({"reorder": -0.1}, "reorder must be a probability"),
        ({"unit": "frame"}, "unit must be one of message, byte, packet"),
        ({"unit": "byte", "loss": 0.1}, "a byte stream cannot lose or duplicate data"),
        ({"unit": "byte", "duplicate": 0.1}, "a byte stream cannot lose or duplicate data"),
    ],
)
def test_invalid_conditions_are_refused(kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        LinkConditions(**kwargs)  # type: ignore[arg-type]


def test_value_records_what_is_in_effect() -> None:
    assert LinkConditions(delay_ms=100, jitter_ms=0, unit="byte").value() == {"delay_ms": 100, "unit": "byte"}
    assert LinkConditions(loss=0.2, unit="packet").value() == {"loss": 0.2, "unit": "packet"}


def test_conditions_combine_as_links_in_series() -> None:
    a = LinkConditions(delay_ms=100, jitter_ms=10, loss=0.5, reorder=0.2)
    b = LinkConditions(delay_ms=50, loss=0.5, duplicate=0.1, reorder=0.6)
    c = combine([a, b])
    assert c is not None
    assert (c.delay_ms, c.jitter_ms, c.loss, c.reorder, c.unit) == (150, 10, 0.75, 0.6, "message")
    assert c.duplicate == pytest.approx(0.1)
    assert combine([]) is None
    assert combine([a]) == a
    with pytest.raises(ValueError, match="units"):
        combine([a, LinkConditions(unit="byte")])


def test_shaper_draws_within_bounds_and_at_the_asked_rates() -> None:
    rng = random.Random(7)
    sh = Shaper(LinkConditions(delay_ms=100, jitter_ms=40, loss=0.3, duplicate=0.2), rng)
    lags = [sh.lag() for _ in range(2000)]
    assert all(0.06 <= x <= 0.14 for x in lags)
    assert 0.095 < sum(lags) / len(lags) < 0.105
    fates = [sh.copies() for _ in range(10_000)]
    lost = sum(1 for f in fates if not f) / len(fates)
    dup = sum(1 for f in fates if len(f) == 2) / sum(1 for f in fates if f)
    assert 0.27 < lost < 0.33 and 0.17 < dup < 0.23
    assert all(len(set(f)) <= 1 for f in fates)  # in order: a copy follows its original
    assert sh.ordered


def test_reordering_shaper_sends_a_fraction_at_once() -> None:
    sh = Shaper(LinkConditions(delay_ms=100, reorder=0.25), random.Random(3))
    assert not sh.ordered
    lags = [sh.copies()[0] for _ in range(4000)]
    at_once = sum(1 for x in lags if x == 0) / len(lags)
    assert 0.22 < at_once < 0.28
    # a byte stream is never reordered within a connection: the shaper of one stays ordered
    assert Shaper(LinkConditions(delay_ms=100, reorder=0.25, unit="byte"), random.Random(3)).ordered


@given(st.lists(st.tuples(st.floats(0, 10), st.booleans()), min_size=1, max_size=40))
def test_backlog_keeps_order_of_ordered_pushes(pushes: list[tuple[float, bool]]) -> None:
    b = Backlog()
    for i, (due, ordered) in enumerate(pushes):
        b.push(bytes([i]), due, ordered)
    out, overtaken = b.pop_due(float("inf"))
    assert sorted(out) == list(range(len(pushes)))
    # an ordered push is never delivered before anything pushed earlier
    pos = {v: k for k, v in enumerate(out)}
    for i, (_, ordered) in enumerate(pushes):
        if ordered:
            assert all(pos[j] < pos[i] for j in range(i))
    assert overtaken == sum(1 for k, v in enumerate(out) if any(w > v for w in out[:k]))
    assert not b and b.nbytes == 0


def test_backlog_delivers_only_what_is_due() -> None:
    b = Backlog()
    b.push(b"a", 1.0)
    b.push(b"b", 0.5)  # ordered: not before "a"
    b.push(b"c", 0.2, ordered=False)  # overtakes both
    assert b.next_due() == 0.2
    assert b.pop_due(0.9) == (b"c", 0)
    assert b.pop_due(1.0) == (b"ab", 2)
    assert b.next_due() is None


def test_stream_lag_is_drawn_once_per_connection_under_reorder() -> None:
    sh = Shaper(LinkConditions(delay_ms=100, reorder=0.5, unit="byte"), random.Random(1))
    lags = []
    for _ in range(50):
        b = Backlog()
        first = b.stream_lag(sh)
        assert all(b.stream_lag(sh) == first for _ in range(5))
        lags.append(first)
    assert {0.0, 0.1} == set(lags)
