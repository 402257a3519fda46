"""The bug-zoo matrix (`configs/zoo/matrix.yaml`): entries, their expectations, and the run
config each entry resolves to."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.nemesis import registry
from harness.run import config_file
from harness.run.config import ConfigError, set_path

ZOO_DIR = Path(__file__).resolve().parents[2] / "configs" / "zoo"
MATRIX = ZOO_DIR / "matrix.yaml"


class MatrixError(ValueError):
    """The matrix file is invalid; the message is one line naming the file and entry."""


@dataclass(frozen=True)
class Expect:
    """`checkers` empty = the run must be valid; else one of them must report it invalid,
    and for raft-safety with `kinds`, a violation of one of those kinds."""

    checkers: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.checkers

    def describe(self) -> str:
        if self.valid:
            return "valid"
        text = " or ".join(self.checkers)
        return f"{text} ({', '.join(self.kinds)})" if self.kinds else text


@dataclass(frozen=True)
class Entry:
    name: str
    config: Path
    expect: Expect
    overrides: dict[str, Any] = field(default_factory=dict)
    needs: str | None = None  # "root"

    @property
    def is_bug(self) -> bool:
        return not self.expect.valid

    def raw_config(self) -> dict[str, Any]:
        """The entry's config file with its overrides applied (validated by `faultline run`)."""
        try:
            raw = config_file.read(self.config).data  # its `extends:` chain merged in
        except ConfigError as e:
            raise MatrixError(f"entry {self.name!r}: {e}") from None
        out = copy.deepcopy(raw)
        for dotted, value in self.overrides.items():
            set_path(out, dotted, value)
        out["name"] = f"zoo-{self.name}"
        return out

    def bugs(self) -> list[str]:
        return list(self.raw_config().get("bugs") or [])


def _strings(source: str, where: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and all(isinstance(s, str) for s in v) and v:
        return tuple(v)
    raise MatrixError(f"{source}: {where}: expected a name or a list of names, got {v!r}")


def _expect(source: str, name: str, v: Any) -> Expect:
    if v == "valid":
        return Expect()
    if not isinstance(v, dict) or "checker" not in v:
        raise MatrixError(
            f"{source}: entry {name!r}: expect: 'valid' or {{checker: ...}}, got {v!r}"
        )
    unknown = set(v) - {"checker", "kinds"}
    if unknown:
        raise MatrixError(f"{source}: entry {name!r}: expect: unknown field {sorted(unknown)[0]!r}")
    kinds = _strings(source, f"entry {name!r}: expect.kinds", v["kinds"]) if "kinds" in v else ()
    return Expect(_strings(source, f"entry {name!r}: expect.checker", v["checker"]), kinds)


def parse(raw: Any, source: str, base: Path) -> list[Entry]:
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list):
        raise MatrixError(f"{source}: expected a mapping with a list 'entries'")
    entries: list[Entry] = []
    seen: set[str] = set()
    for i, e in enumerate(raw["entries"]):
        if not isinstance(e, dict):
            raise MatrixError(f"{source}: entries[{i}]: expected a mapping")
        unknown = set(e) - {"name", "config", "set", "expect", "needs"}
        if unknown:
            raise MatrixError(f"{source}: entries[{i}]: unknown field {sorted(unknown)[0]!r}")
        name = e.get("name")
        if not isinstance(name, str) or not name or name in seen:
            raise MatrixError(
                f"{source}: entries[{i}]: name: expected a new non-empty name, got {name!r}"
            )
        seen.add(name)
        if not isinstance(e.get("config"), str):
            raise MatrixError(f"{source}: entry {name!r}: config: expected a file name")
        overrides = e.get("set") or {}
        if not isinstance(overrides, dict):
            raise MatrixError(f"{source}: entry {name!r}: set: expected a mapping of dotted fields")
        needs = e.get("needs")
        if needs not in (None, "root"):
            raise MatrixError(f"{source}: entry {name!r}: needs: expected root, got {needs!r}")
        entries.append(
            Entry(
                name,
                base / e["config"],
                _expect(source, name, e.get("expect")),
                dict(overrides),
                needs,
            )
        )
    return entries


def load(path: Path = MATRIX) -> list[Entry]:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise MatrixError(f"{path}: cannot read: {e}") from None
    return parse(raw, str(path), path.parent)


def select(entries: Sequence[Entry], only: Sequence[str]) -> list[Entry]:
    """Entries named in `only` (all if empty), in matrix order; unknown names are an error."""
    if not only:
        return list(entries)
    names = {e.name for e in entries}
    missing = [n for n in only if n not in names]
    if missing:
        raise MatrixError(
            f"--only: unknown entry {missing[0]!r} (known: {', '.join(sorted(names))})"
        )
    return [e for e in entries if e.name in set(only)]


def describe_faults(raw: dict[str, Any]) -> str:
    """A short account of a config's fault schedule, e.g. `partition(leader) every 6s for 4s`."""
    nem = raw.get("nemesis") or {}
    faults = nem.get("faults", ["partition", "kill", "pause", "transfer"])
    parts = []
    for f in faults:
        field = registry.get(f).kinds_field if f in registry.names() else None
        kinds = nem.get(field, None) if field else None
        parts.append(f"{f}({'/'.join(kinds)})" if kinds else f)
    every = "~every" if nem.get("schedule") == "random" else "every"
    text = f"{', '.join(parts) or 'none'} {every} {nem.get('interval', 10)}s for {nem.get('duration', 5)}s"
    if nem.get("schedule") == "mix":
        text += " (mixed)"
    if registry.moves_clocks(faults) and nem.get("clock_rates"):
        text += f"; rates {'/'.join(f'{r:g}x' for r in nem['clock_rates'])}"
    raft = raw.get("raft") or {}
    flags = [f"{k.replace('_', '-')}={v}" for k, v in sorted(raft.items())]
    n = raw.get("nodes", 3)
    return f"{text}; {n} nodes" + (f"; {', '.join(flags)}" if flags else "")
