"""Wire encoding: round trips of every value kind, and malformed input is rejected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodes.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
    codec,
)

u64 = st.integers(min_value=0, max_value=2**64 - 1)
small = st.integers(min_value=0, max_value=1000)
entries = st.builds(Entry, u64, u64, st.sampled_from(EntryType), st.binary(max_size=40))
conf_states = st.builds(
    ConfState, st.lists(small, max_size=5).map(tuple), st.lists(small, max_size=5).map(tuple)
)
snapshots = st.builds(
    Snapshot, st.binary(max_size=40), st.builds(SnapshotMetadata, conf_states, u64, u64)
)
messages = st.builds(
    Message,
    st.sampled_from(MessageType),
    to=u64, from_=u64, term=u64, log_term=u64, index=u64,
    entries=st.lists(entries, max_size=4).map(tuple),
    commit=u64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=u64,
    context=st.binary(max_size=20),
)


@settings(max_examples=150, deadline=None)
@given(messages)
def test_message_round_trip(m: Message) -> None:
    assert codec.decode_message(codec.encode_message(m)) == m


@settings(max_examples=60, deadline=None)
@given(entries, conf_states, snapshots, st.builds(HardState, u64, u64, u64))
def test_value_round_trips(e: Entry, cs: ConfState, s: Snapshot, hs: HardState) -> None:
    assert codec.decode_entry(codec.encode_entry(e)) == e
    assert codec.decode_conf_state(codec.encode_conf_state(cs)) == cs
    assert codec.decode_snapshot(codec.encode_snapshot(s)) == s
    assert codec.decode_hard_state(codec.encode_hard_state(hs)) == hs


@pytest.mark.parametrize("t", list(ConfChangeType))
def test_conf_change_round_trip(t: ConfChangeType) -> None:
    cc = ConfChange(t, 7, b"127.0.0.1:9000")
    assert codec.decode_conf_change(codec.encode_conf_change(cc)) == cc


def test_encoding_is_compact() -> None:
    hb = Message(MessageType.HEARTBEAT, to=2, from_=1, term=5, commit=100)
    assert len(codec.encode_message(hb)) <= 16


def _sample() -> bytes:
    e = Entry(3, 9, EntryType.NORMAL, b"abc")
    return codec.encode_message(Message(MessageType.APP, to=2, from_=1, term=3, entries=(e,)))


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (b"", "truncated"),
        (bytes([99]), "unknown MessageType"),
        (_sample()[:-1], "runs past the end"),
        (_sample()[:3], "truncated"),
        (_sample() + b"\x00", "trailing"),
        (bytes([3]) + b"\xff" * 11, "varint longer"),
        (bytes([3]) + b"\x00" * 7 + b"\x80", "unknown message flags"),
        (bytes([3]) + b"\x00" * 8 + b"\x05ab", "runs past the end"),
        (bytes([3]) + b"\x00" * 9 + b"\x7f", "entries cannot fit"),
    ],
)
def test_malformed_message_rejected(blob: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        codec.decode_message(blob)


@pytest.mark.parametrize(
    ("fn", "blob", "why"),
    [
        (codec.decode_entry, b"\x01\x01\x07\x00", "unknown EntryType"),
        (codec.decode_conf_change, b"\x09\x01\x00", "unknown ConfChangeType"),
        (codec.decode_hard_state, b"\x01\x02", "truncated"),
        (codec.decode_conf_state, b"\x05\x01", "runs past the end"),
        (codec.decode_snapshot, b"\x00\x01", "truncated"),
    ],
)
def test_malformed_values_rejected(fn: object, blob: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        fn(blob)  # type: ignore[operator]


def test_negative_integer_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        codec.encode_hard_state(HardState(term=-1))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_value_error(blob: bytes) -> None:
    for fn in (codec.decode_message, codec.decode_entry, codec.decode_snapshot,
               codec.decode_conf_change, codec.decode_conf_state, codec.decode_hard_state):
        try:
            fn(blob)
        except ValueError:
            pass


@settings(max_examples=100, deadline=None)
@given(messages, st.integers(min_value=0, max_value=200))
def test_every_truncation_of_a_message_is_rejected(m: Message, cut: int) -> None:
    b = codec.encode_message(m)
    if cut < len(b):
        with pytest.raises(ValueError):
            codec.decode_message(b[:cut])


def test_integers_beyond_64_bits_are_refused_both_ways() -> None:
    # Raft ids, terms and indexes are uint64 (as in etcd): what cannot be decoded must not be
    # encodable, or a conf change naming such a node is accepted, replicated and then kills
    # every replica that applies it (issue 20, item 1)
    with pytest.raises(ValueError, match="64 bits"):
        codec.encode_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 2**64))
    assert codec.decode_conf_change(
        codec.encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, 2**64 - 1))
    ).node_id == 2**64 - 1
    # a 10-byte varint whose last byte carries more than bit 63
    overflow = bytes([int(ConfChangeType.ADD_NODE)]) + b"\xff" * 9 + b"\x02" + b"\x00"
    with pytest.raises(ValueError, match="64 bits"):
        codec.decode_conf_change(overflow)
