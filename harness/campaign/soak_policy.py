"""The soak's decisions, as pure functions: durations, per-run seeds from the master seed,
which config and fault mix each run uses, what to keep of a run, and what to prune when the
store grows past its bound."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

KEEP_MODES = ("passing", "failing", "all")

#: What a compacted passing run keeps: enough for the index, the trend and a replay.
COMPACT_FILES = ("test.yaml", "results.json", "report.html", "recovery.json")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SoakError(ValueError):
    """A soak option is invalid; the message is one line naming the option."""


def parse_duration(text: str) -> float:
    """`8h`, `30m`, `90s`, `1h30m` or plain seconds -> seconds."""
    s = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise SoakError(f"--duration: expected e.g. 8h, 30m, 90s or 1h30m, got {text!r}")
    return float(sum(float(n) * _UNITS[u] for n, u in parts))


def run_seed(master_seed: int, index: int) -> int:
    """The seed of run `index` (0-based): a hash of the master seed and the index, so that any
    single run of a soak can be replayed without replaying the ones before it."""
    digest = hashlib.sha256(f"faultline-soak:{master_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**31 - 1) + 1


def parse_mix(text: str) -> list[str]:
    """A fault mix flag `partition,kill` -> ["partition", "kill"]; `none` = no faults."""
    mix = [f.strip() for f in text.split(",") if f.strip()]
    if not mix:
        raise SoakError(f"--mix: expected comma-separated faults or none, got {text!r}")
    return [] if mix == ["none"] else mix


@dataclass(frozen=True)
class Slot:
    """Config and fault mix of one run (mix None = the config's own faults)."""

    config: Path
    mix: tuple[str, ...] | None


def rotation(configs: Sequence[Path], mixes: Sequence[Sequence[str]], index: int) -> Slot:
    """Run `index` cycles through the configs, and through the mixes once per config cycle,
    so every (config, mix) pair comes up within len(configs) * len(mixes) runs."""
    if not configs:
        raise SoakError("soak: no config to run")
    config = configs[index % len(configs)]
    if not mixes:
        return Slot(config, None)
    return Slot(config, tuple(mixes[(index // len(configs)) % len(mixes)]))


def keep_decision(keep: str, verdict: str) -> str:
    """`full`, `compact` or `remove` for a run with `verdict` (valid/anomaly/unknown/infra).

    Failing, unknown and crashed runs always keep everything. Passing runs: `all` keeps them
    whole, `passing` keeps a compact summary, `failing` removes them (the soak summary still
    lists them)."""
    if keep not in KEEP_MODES:
        raise SoakError(f"--keep: expected one of {', '.join(KEEP_MODES)}, got {keep!r}")
    if verdict != "valid" or keep == "all":
        return "full"
    return "compact" if keep == "passing" else "remove"


def compact_run(run_dir: Path) -> int:
    """Delete all but COMPACT_FILES from a run folder; returns the bytes freed."""
    freed = 0
    for entry in list(run_dir.iterdir()):
        if entry.name in COMPACT_FILES:
            continue
        freed += tree_size(entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return freed


def tree_size(path: Path) -> int:
    """Bytes of the files under `path` (symlinks not followed)."""
    if path.is_symlink() or path.is_file():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class StoredRun:
    path: Path
    size: int  # bytes
    stamp: str  # the run folder's name, `YYYYmmddTHHMMSS-seed`: sorts oldest first
    passing: bool


def prune_plan(
    runs: Sequence[StoredRun], limit_bytes: int, protect: Sequence[Path] = ()
) -> list[Path]:
    """Passing runs to delete, oldest first, until the store fits in `limit_bytes`. Failing or
    unknown runs are never pruned (the store may then stay above the bound)."""
    total = sum(r.size for r in runs)
    plan: list[Path] = []
    kept = set(protect)
    for run in sorted(
        (r for r in runs if r.passing and r.path not in kept), key=lambda r: (r.stamp, str(r.path))
    ):
        if total <= limit_bytes:
            break
        plan.append(run.path)
        total -= run.size
    return plan


def exit_code(anomalies: int, unknowns: int, infra: int) -> int:
    """1 if any anomaly, else 2 if any unknown, else 3 if any infrastructure error, else 0."""
    if anomalies:
        return 1
    if unknowns:
        return 2
    if infra:
        return 3
    return 0
