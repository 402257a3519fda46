"""What a run is, in a few fields: name, seed, time, verdicts, duration, ops, reproduce command.

Shared by the per-run banner and the store index. test.yaml is read for (first key found):
name: `name` | `test`; seed: `seed`; config: `config` | `config_path` | `config_file`;
versions: `versions` | `version`; reproduce: `reproduce` | `command` (string or argv list);
start: `start_time` | `started_at` | `start_wall` (epoch seconds or ISO 8601).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.rundata import RunData

RUN_DIR_RE = re.compile(r"^(\d{8}T\d{6})-(-?\d+)(?:-\d+)?$")  # -N: a second run in the same second


def verdict_label(valid: Any) -> str:
    """true -> valid, false -> anomaly, anything else -> unknown."""
    if valid is True:
        return "valid"
    if valid is False:
        return "anomaly"
    return "unknown"


@dataclass
class RunSummary:
    name: str
    seed: Any
    started: datetime | None
    overall: str
    verdicts: dict[str, str] = field(default_factory=dict)
    duration_s: float | None = None
    ops: int = 0
    throughput: float | None = None
    config: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    reproduce: str = ""


def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def parse_start(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return None


def run_dir_time(run_dir: Path) -> tuple[datetime | None, str | None]:
    """The timestamp and seed encoded in a run folder's name (`YYYYmmddTHHMMSS-seed`)."""
    m = RUN_DIR_RE.match(run_dir.name)
    if not m:
        return None, None
    try:
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC), m.group(2)
    except ValueError:
        return None, m.group(2)


def reproduce_command(test: dict[str, Any], run_dir: Path, seed: Any) -> str:
    given = _first(test, "reproduce", "command")
    if isinstance(given, list):
        return shlex.join(str(x) for x in given)
    if isinstance(given, str) and given.strip():
        return given.strip()
    config = _first(test, "config", "config_path", "config_file")
    target = str(config) if config else str(run_dir / "test.yaml")
    cmd = ["faultline", "run", target]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return shlex.join(cmd)


def summarize(run: RunData, n_ops: int, duration_ns: int) -> RunSummary:
    """`n_ops` client operations over `duration_ns` (0: unknown): counted by the caller, which
    knows how (the report from the history, the index from stats or a skim of it)."""
    test = run.test
    dir_time, dir_seed = run_dir_time(run.run_dir)
    seed = _first(test, "seed")
    if seed is None:
        seed = dir_seed
    name = _first(test, "name", "test")
    started = parse_start(_first(test, "start_time", "started_at", "start_wall")) or dir_time
    verdicts: dict[str, str] = {}
    throughput = None
    overall = "unknown"
    if run.results is not None:
        overall = verdict_label(run.results.valid)
        verdicts = {cname: verdict_label(entry.valid) for cname, entry in run.results.checkers.items()}
        throughput = run.results.throughput
    duration = duration_ns / 1e9 if duration_ns else None
    if duration is None and isinstance(_first(test, "duration", "time_limit"), int | float):
        duration = float(_first(test, "duration", "time_limit"))
    versions = _first(test, "versions", "version")
    return RunSummary(
        name=str(name) if name is not None else run.run_dir.parent.name,
        seed=seed,
        started=started,
        overall=overall,
        verdicts=verdicts,
        duration_s=duration,
        ops=n_ops,
        throughput=throughput,
        config=str(_first(test, "config", "config_path", "config_file") or "") or None,
        versions=versions if isinstance(versions, dict) else ({"version": versions} if versions else {}),
        reproduce=reproduce_command(test, run.run_dir, seed),
    )
