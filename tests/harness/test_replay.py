"""A fault mix on a real raftkv cluster, recorded, and replayed from its run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.env import REPO

pytestmark = pytest.mark.slow


def faultline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=180)


def faults(run_dir: Path) -> list[tuple[str, Any]]:
    """The nemesis's starts, with what they hit (random targets come from each event's seed)."""
    out = []
    for line in (run_dir / "history.jsonl").read_text().splitlines():
        op = json.loads(line)
        if op["process"] == "nemesis" and op["f"].startswith("start-"):
            v = op["value"]
            out.append((op["f"], v.get("nodes") or v.get("groups")))
    return out


def test_a_mix_overlaps_faults_and_replays_them(tmp_path: Path, store: Path) -> None:
    cfg = yaml.safe_load((REPO / "configs" / "local.yaml").read_text())
    cfg["nemesis"] = {"faults": ["partition", "kill", "pause"], "schedule": "mix", "interval": 3, "duration": 3,
                      "quiet": 4, "partitions": ["one"], "kills": ["one"], "pauses": ["one"]}
    cfg.update(time_limit=16, warmup=2, rate=60)
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(cfg))
    first = faultline("run", str(path), "--store", str(store), "--seed", "21", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    run_dir = (store / "latest").resolve()
    schedule = json.loads((run_dir / "schedule.json").read_text())["events"]
    assert all(e["at"] + e["duration"] <= 16 - 4 + 1e-6 for e in schedule), "the quiet end has no faults"
    spans = [(e["at"], e["at"] + e["duration"], e["fault"]) for e in schedule]
    assert any(a0 < b1 and b0 < a1 and fa != fb for a0, a1, fa in spans for b0, b1, fb in spans), spans
    assert len(faults(run_dir)) == len(schedule)

    again = faultline("run", "--replay", str(run_dir), "--store", str(store), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    replayed = (store / "latest").resolve()
    assert replayed != run_dir
    assert yaml.safe_load((replayed / "test.yaml").read_text())["replay_of"] == str(run_dir)
    assert json.loads((replayed / "schedule.json").read_text())["events"] == schedule
    assert faults(replayed) == faults(run_dir)


def test_replay_of_a_folder_without_schedule_is_one_line(tmp_path: Path) -> None:
    p = faultline("run", "--replay", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 3
    assert p.stderr.strip().count("\n") == 0 and "schedule.json: cannot read" in p.stderr
