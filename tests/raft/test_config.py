"""Config validation: every invalid field is named in the error."""

from __future__ import annotations

import pytest

from nodes.raft import (
    KNOWN_BUGS,
    Config,
    ConfigInvalid,
    MemoryStorage,
    RawNode,
    ReadOnlyOption,
)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"id": 0}, "Config.id"),
        ({"heartbeat_tick": 0}, "Config.heartbeat_tick"),
        ({"election_tick": 1, "heartbeat_tick": 1}, "Config.election_tick"),
        ({"election_tick": 3, "heartbeat_tick": 5}, "Config.election_tick"),
        ({"max_inflight_msgs": 0}, "Config.max_inflight_msgs"),
        ({"max_uncommitted_entries_size": -1}, "Config.max_uncommitted_entries_size"),
        ({"read_only_option": ReadOnlyOption.LEASE_BASED}, "Config.read_only_option"),
        ({"bugs": frozenset({"no-such-bug"})}, "Config.bugs"),
    ],
)
def test_invalid_config_rejected(kw: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"id": 1, "storage": MemoryStorage()}
    args.update(kw)
    cfg = Config(**args)  # type: ignore[arg-type]
    with pytest.raises(ConfigInvalid, match=field.replace(".", r"\.")):
        RawNode(cfg)


def test_valid_configs_accepted() -> None:
    Config(1, MemoryStorage()).validate()
    Config(1, MemoryStorage(), check_quorum=True,
           read_only_option=ReadOnlyOption.LEASE_BASED).validate()
    Config(1, MemoryStorage(), bugs=KNOWN_BUGS).validate()


def test_lease_without_check_quorum_bug_skips_validation() -> None:
    Config(1, MemoryStorage(), read_only_option=ReadOnlyOption.LEASE_BASED,
           bugs=frozenset({"lease-without-check-quorum"})).validate()


def test_bootstrap_refuses_non_empty_storage() -> None:
    from nodes.raft import RaftError

    rn = RawNode(Config(1, MemoryStorage()))
    rn.bootstrap([1, 2, 3])
    st = MemoryStorage()
    rd = rn.ready()
    st.append(rd.entries)
    with pytest.raises(RaftError, match="not empty"):
        RawNode(Config(1, st)).bootstrap([1])
