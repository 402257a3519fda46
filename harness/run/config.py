"""Test configuration: YAML validated against an explicit schema, defaults resolved, seed fixed.

Every error is one line naming the file and the dotted field, e.g.
`configs/x.yaml: nemesis.interval: expected a number, got 'abc'`; with `extends:` the file named
is the one that set the field (reading files and `extends:` chains: harness.run.config_file).
Command-line flags are applied as overrides to the raw mapping before validation, so they are
checked the same way. Everything is refused here, before a run folder exists.
"""

from __future__ import annotations

import copy
import math
import random
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import providers
from harness.nemesis import registry
from harness.nemesis.faults import clock, corrupt, drift_isolate, link
from harness.protocols import HarnessError, ReplicaCopies
from harness.providers.clock import RATE_RANGE
from harness.run import config_file
from harness.run.config_file import ConfigError, RawConfig
from workloads import WORKLOADS
from workloads import get as get_workload

__all__ = ["ConfigError", "RawConfig", "load", "set_path", "validate"]

READ_MODES = ("linearizable", "lease", "serializable")


@dataclass(frozen=True)
class Field:
    """One schema entry: a checker of the raw value and its default (None = no default)."""

    check: Callable[[str, Any], Any]
    default: Any = None


def _describe(v: Any) -> str:
    text = repr(v) if isinstance(v, str) else f"{type(v).__name__} {v!r}"
    return text if len(text) <= 80 else f"{text[:77]}..."


#: Upper bounds: beyond them a value is a typo, and would overflow a timer or exhaust memory.
MAX_NUMBER = 1e6  # seconds (11 days), ops/s, weights
MAX_INT = 2**31 - 1


def _num(lo: float | None = None, hi: float = MAX_NUMBER) -> Callable[[str, Any], Any]:
    def check(path: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"expected a number, got {_describe(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"expected a finite number, got {v}")
        if lo is not None and v < lo:
            raise ValueError(f"must be >= {lo}, got {_describe(v)}")
        if v > hi:
            raise ValueError(f"must be <= {hi:g}, got {_describe(v)}")
        return float(v)

    return check


def _int(lo: int | None = None, hi: int = MAX_INT) -> Callable[[str, Any], Any]:
    def check(path: str, v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {_describe(v)}")
        if lo is not None and v < lo:
            raise ValueError(f"must be >= {lo}, got {_describe(v)}")
        if v > hi:
            raise ValueError(f"must be <= {hi}, got {_describe(v)}")
        return v

    return check


def _seed(path: str, v: Any) -> int | None:
    return None if v is None else _int(-(2**63), 2**63 - 1)(path, v)


def _name(path: str, v: Any) -> str:
    """The test's name: a folder of the store, so one plain path component."""
    _str(path, v)
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", v):
        raise ValueError(
            "expected up to 100 letters, digits, '.', '_' or '-', not starting with '.' "
            f"(it names the run's folder in the store), got {_describe(v)}"
        )
    return v


def _bool(path: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_describe(v)}")
    return v


def _str(path: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"expected a non-empty string, got {_describe(v)}")
    return v


def _opt_str(path: str, v: Any) -> str | None:
    return None if v is None else _str(path, v)


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], Any]:
    def check(path: str, v: Any) -> str:
        if v not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {_describe(v)}")
        return str(v)

    return check


def _list_of(options: tuple[str, ...] | None) -> Callable[[str, Any], Any]:
    def check(path: str, v: Any) -> list[str]:
        if isinstance(v, str):
            v = [s for s in v.split(",") if s]
        if not isinstance(v, list):
            raise ValueError(f"expected a list, got {_describe(v)}")
        out = []
        for i, item in enumerate(v):
            if item == "":
                raise ValueError(f"item {i}: empty name")
            if not isinstance(item, str) or (options is not None and item not in options):
                allowed = f"one of {', '.join(options)}" if options else "a string"
                raise ValueError(f"item {i}: expected {allowed}, got {_describe(item)}")
            out.append(item)
        return out

    return check


def _nums(lo: float, hi: float) -> Callable[[str, Any], Any]:
    """A non-empty list of numbers within [lo, hi] (or one number, or '0.5,2')."""
    one = _num(lo, hi)

    def check(path: str, v: Any) -> list[float]:
        if isinstance(v, str):
            try:
                v = [float(s) for s in v.split(",") if s.strip()]
            except ValueError:
                raise ValueError(f"expected numbers separated by commas, got {_describe(v)}") from None
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list) or not v:
            raise ValueError(f"expected a non-empty list of numbers, got {_describe(v)}")
        out = []
        for i, item in enumerate(v):
            try:
                out.append(one(path, item))
            except ValueError as e:
                raise ValueError(f"item {i}: {e}") from None
        return out

    return check


def _mapping(path: str, v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping, got {_describe(v)}")
    return dict(v)


def _nodes(path: str, v: Any) -> list[str]:
    """A node count (named n1..nN) or an explicit list of node names."""
    if isinstance(v, str) and re.fullmatch(r"\d+", v):
        v = int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        if not 1 <= v <= 9:
            raise ValueError(f"expected between 1 and 9 nodes, got {v}")
        return [f"n{i}" for i in range(1, v + 1)]
    names = _list_of(None)(path, v)
    for name in names:
        if not re.fullmatch(r"n[1-9]\d*", name):
            raise ValueError(f"node names are n1..nN (Raft id = N), got {name!r}")
    if len(set(names)) != len(names) or not names:
        raise ValueError("expected distinct, at least one node name")
    return names


#: Client workers are threads of the controller.
MAX_CONCURRENCY = 1024


def _concurrency(path: str, v: Any) -> int | str:
    """An int, or Jepsen's multiple of the node count like `2n` (resolved later)."""
    if isinstance(v, str) and re.fullmatch(r"[1-9]\d{0,3}n", v):
        return v
    if isinstance(v, str) and re.fullmatch(r"[1-9]\d{0,30}", v):
        v = int(v)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
        if v > MAX_CONCURRENCY:
            raise ValueError(f"must be <= {MAX_CONCURRENCY} workers, got {v}")
        return v
    raise ValueError(f"expected a positive integer or a multiple of nodes like '2n', got {_describe(v)}")


Schema = dict[str, "Field | dict[str, Any]"]

RAFT: Schema = {
    "election_tick": Field(_int(2, 100_000), 10),
    "heartbeat_tick": Field(_int(1, 100_000), 1),
    "tick_interval_ms": Field(_int(1, 60_000), 100),
    "pre_vote": Field(_bool, True),
    "check_quorum": Field(_bool, True),
    "read_mode": Field(_choice(READ_MODES), "linearizable"),
    "max_size_per_msg": Field(_int(1), 1 << 20),
    "drop_removed_peers": Field(_bool, True),
    # raftkv: applied entries between automatic snapshots (nodes --snapshot-count)
    "snapshot_count": Field(_int(1), 1000),
}

WORKLOAD_OPTS: Schema = {
    "keys": Field(_int(1, 1_000_000), 4),
    "ops_per_key": Field(_int(1, 1_000_000_000), 150),
    "read": Field(_num(0), 0.5),
    "write": Field(_num(0), 0.3),
    "cas": Field(_num(0), 0.15),
    "delete": Field(_num(0), 0.05),
    "timeout": Field(_num(0.1), 2.0),
}

NEMESIS: Schema = {
    "faults": Field(_list_of(registry.names()), ["partition", "kill", "pause", "transfer"]),
    # interval / random: one fault at a time; mix: each family on its own timeline, overlapping
    "schedule": Field(_choice(("interval", "random", "mix")), "interval"),
    "interval": Field(_num(0.1), 10.0),
    "duration": Field(_num(0.1), 5.0),
    # seconds without faults at the end of the load, before the final heal and recovery check
    "quiet": Field(_num(0), 0.0),
    # one field per fault family with kinds (nemesis.partitions, .kills, ...), from the registry
    **{
        f.kinds_field: Field(_list_of(f.kinds), list(f.kinds))
        for f in registry.families()
        if f.kinds_field is not None
    },
    # what clock faults do (harness/nemesis/faults/clock.py, drift_isolate.py) and to whom
    "clock_targets": Field(_list_of(clock.TARGETS), list(clock.DEFAULTS["clock_targets"])),
    "clock_rates": Field(_nums(*RATE_RANGE), list(clock.DEFAULTS["clock_rates"])),
    "max_clock_offset": Field(_num(0), clock.DEFAULTS["max_clock_offset"]),
    "strobe_period": Field(_num(0.01, 3600), clock.DEFAULTS["strobe_period"]),
    "drift_before_isolate": Field(_num(0), drift_isolate.DEFAULT_LEAD),
    # what link faults apply (harness/nemesis/faults/link.py) and to which links
    "link_delay_ms": Field(_num(0), link.DEFAULTS["link_delay_ms"]),
    "link_jitter_ms": Field(_num(0), link.DEFAULTS["link_jitter_ms"]),
    "link_loss": Field(_num(0, 1), link.DEFAULTS["link_loss"]),
    "link_duplicate": Field(_num(0, 1), link.DEFAULTS["link_duplicate"]),
    "link_reorder": Field(_num(0, 1), link.DEFAULTS["link_reorder"]),
    "link_targets": Field(_list_of(link.TARGETS), list(link.TARGETS)),
    # what corrupt faults change: file kinds the DB names (DataDirs.data_files; default all),
    # and how many bytes a bitflip changes
    "corrupt_files": Field(_list_of(None), []),
    "corrupt_bytes": Field(_int(1), corrupt.DEFAULT_BYTES),
    # faultfs's durability model for names (docs/faultfs.md): posix (a create, rename, mkdir
    # is durable at its directory's fsync) or durable (at once, only file data is volatile:
    # LazyFS's model, as in Jepsen's tests)
    "disk_metadata": Field(_choice(("posix", "durable")), "posix"),
}

CHECKER: Schema = {
    "linearizability_timeout": Field(_num(1), 120.0),
}

SCHEMA: Schema = {
    "name": Field(_name, "raftkv"),
    "db": Field(_str, "raftkv"),
    "provider": Field(_choice(providers.NAMES), "local"),
    "nodes": Field(_nodes, 3),
    "workload": Field(_choice(tuple(WORKLOADS)), "kv"),
    "workload_opts": WORKLOAD_OPTS,
    "time_limit": Field(_num(1), 60.0),
    "warmup": Field(_num(0), 5.0),
    "concurrency": Field(_concurrency, "2n"),
    "rate": Field(_num(0), 100.0),
    "seed": Field(_seed, None),
    "bugs": Field(_list_of(None), []),
    "store": Field(_str, "store"),
    "test_count": Field(_int(1, 100_000), 1),
    "junit": Field(_opt_str, None),
    "recovery_timeout": Field(_num(1), 30.0),
    "final_reads": Field(_bool, True),
    "startup_timeout": Field(_num(1), 30.0),
    "nemesis": NEMESIS,
    "raft": RAFT,
    "checker": CHECKER,
    # Free-form sections read by the provider / DB adapter that owns them (hosts, paths...).
    "provider_opts": Field(_mapping, {}),
    "db_opts": Field(_mapping, {}),
}


Where = Callable[[str], str]
"""Names the file that set a dotted field (the one file, or the file of an `extends:` chain)."""


def _key(k: Any) -> str:
    """A mapping key as a field name in a one-line message."""
    text = k if isinstance(k, str) and k.isprintable() else repr(k)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _validate(where: Where, schema: Schema, raw: Any, prefix: str) -> dict[str, Any]:
    here = prefix.rstrip(".") or "(top level)"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where(here)}: {here}: expected a mapping, got {_describe(raw)}")
    for key in raw:
        if key not in schema:
            path = f"{prefix}{_key(key)}"
            raise ConfigError(f"{where(path)}: {path}: unknown field (known: {', '.join(schema)})")
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        path = f"{prefix}{key}"
        if isinstance(spec, dict):
            out[key] = _validate(where, spec, raw.get(key), f"{path}.")
            continue
        value = raw[key] if key in raw else copy.deepcopy(spec.default)
        try:
            out[key] = spec.check(path, value) if value is not None or key in raw else None
        except ValueError as e:
            raise ConfigError(f"{where(path)}: {path}: {e}") from None
    return out


def _combinations(where: Where, cfg: dict[str, Any]) -> None:
    """Refuse combinations that cannot be made real, naming the field at fault."""
    n = len(cfg["nodes"])
    if cfg["warmup"] >= cfg["time_limit"]:
        raise ConfigError(f"{where('warmup')}: warmup: must be shorter than time_limit ({cfg['time_limit']})")
    if cfg["nemesis"]["quiet"] and cfg["warmup"] + cfg["nemesis"]["quiet"] >= cfg["time_limit"]:
        raise ConfigError(
            f"{where('nemesis.quiet')}: nemesis.quiet: warmup + quiet must leave time for faults within time_limit "
            f"({cfg['warmup']} + {cfg['nemesis']['quiet']} >= {cfg['time_limit']})"
        )
    mix = cfg["workload_opts"]
    if sum(mix[f] for f in ("read", "write", "cas", "delete")) <= 0:
        raise ConfigError(f"{where('workload_opts')}: workload_opts: the op mix weights must not all be 0")
    if isinstance(cfg["concurrency"], str):
        workers = int(cfg["concurrency"][:-1]) * n
        if workers > MAX_CONCURRENCY:
            raise ConfigError(f"{where('concurrency')}: concurrency: must be <= {MAX_CONCURRENCY} workers, "
                              f"got {workers} ({n} nodes)")
        cfg["concurrency"] = workers
    _ask_db_and_provider(where, cfg)


def _refusal(where: Where, owner: str, e: Exception) -> ConfigError:
    """The adapter's or provider's one-line refusal, naming the file of the field it starts
    with (`db_opts.dir: ...`); a refusal naming no field is put under `owner` (db, provider)."""
    msg = config_file.one_line(e)
    head = msg.split(":", 1)[0]
    if ":" in msg and head.split(".", 1)[0] in SCHEMA:
        return ConfigError(f"{where(head)}: {msg}")
    return ConfigError(f"{where(owner)}: {owner}: {msg}")


def _ask_db_and_provider(where: Where, cfg: dict[str, Any]) -> None:
    """Create the DB adapter and the provider as the run would (their constructors read the
    config and do no I/O): unknown plug-ins, bad db_opts / provider_opts, and faults that the
    DB or the provider cannot make real are refused here, before any run folder exists."""
    from harness import db as dbs

    try:
        factory = dbs.get(cfg["db"])
    except HarnessError as e:
        raise ConfigError(f"{where('db')}: db: {e}") from None
    try:
        db = dbs.checked(cfg["db"], factory(cfg))
    except HarnessError as e:  # the adapter names the field (db_opts.x, bugs, raft.read_mode)
        raise _refusal(where, "db", e) from None
    except Exception as e:  # a plug-in that does not say which field: still one line, no traceback
        raise ConfigError(f"{where('db_opts')}: db_opts: db {cfg['db']} refused the config: "
                          f"{type(e).__name__}: {config_file.one_line(e)}") from None
    try:
        provider = providers.get(cfg["provider"])(cfg, Path(tempfile.gettempdir()) / "faultline-validate")
    except HarnessError as e:  # the provider names the field (provider_opts.x)
        raise _refusal(where, "provider", e) from None
    except Exception as e:
        raise ConfigError(f"{where('provider_opts')}: provider_opts: the {cfg['provider']} provider refused them: "
                          f"{type(e).__name__}: {config_file.one_line(e)}") from None
    if get_workload(cfg["workload"]).final_reads == "replicas" and not isinstance(db, ReplicaCopies):
        raise ConfigError(
            f"{where('workload')}: workload: {cfg['workload']} needs a DB that reads each replica's own copy of "
            f"the log (ReplicaCopies), which db {cfg['db']} lacks"
        )
    for fault in cfg["nemesis"]["faults"]:
        why = registry.refusal(fault, cfg, db, provider)
        if why:
            raise ConfigError(
                f"{where('nemesis.faults')}: nemesis.faults: {fault} cannot be made real for db {cfg['db']} "
                f"on the {cfg['provider']} provider: {why}"
            )


#: Keys the runner adds to the saved test.yaml (not config fields; ignored when replaying it).
RUN_METADATA = frozenset({"versions", "start_time", "replay_of"})


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in a nested raw mapping (used for command-line overrides)."""
    parts = dotted.split(".")
    cur = raw
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value


def validate(
    raw: Any, source: str | RawConfig = "<config>", overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a raw mapping (+ dotted overrides) into a resolved config with a fixed seed.
    `source` names the file in errors; a RawConfig (from config_file.read) names, per field,
    the file of its `extends:` chain that set it."""
    if isinstance(source, RawConfig):
        where: Where = source.source
        top = source.top
    else:
        top = source
        where = lambda _path: top  # noqa: E731
    merged: dict[str, Any] = copy.deepcopy(raw) if isinstance(raw, dict) else raw
    if overrides:
        if merged is None:
            merged = {}
        if not isinstance(merged, dict):
            raise ConfigError(f"{top}: (top level): expected a mapping, got {_describe(merged)}")
        for dotted, value in overrides.items():
            set_path(merged, dotted, value)
    if isinstance(merged, dict):
        # A saved test.yaml replays as a config: what the run recorded about itself is not input.
        merged = {k: v for k, v in merged.items() if k not in RUN_METADATA}
    cfg = _validate(where, SCHEMA, merged, "")
    _combinations(where, cfg)
    if cfg["seed"] is None:
        # The seed is fixed here and saved, so the run can be replayed.
        cfg["seed"] = random.SystemRandom().randrange(1, 2**31)
    return cfg


def load(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read (with its `extends:` chain) and validate a YAML config file (None = defaults only)."""
    if path is None:
        return validate({}, "<defaults>", overrides)
    raw = config_file.read(path)
    return validate(raw.data, raw, overrides)
