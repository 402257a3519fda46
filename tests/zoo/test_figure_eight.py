"""The figure-eight fault on real raftkv processes (local provider, no root): with
`--bug commit-old-term` the old leader applies an old-term entry that a later leader
overwrites, and raft-safety reports the divergent state machines; the correct build under the
same schedule is valid, and the scenario visibly played to its end: the third leader is the
follower that received the old leader's new-term entry, not the node holding the newer one.

Each run has 20 s of load (about 35 s with start-up and checking).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.env import REPO, procs_naming

pytestmark = pytest.mark.slow

CONFIG = REPO / "configs" / "zoo" / "commit-old-term.yaml"


def run(store: Path, *extra: str) -> tuple[int, dict[str, Any], list[dict[str, Any]], str]:
    args = [sys.executable, "-m", "harness", "run", str(CONFIG), "--time-limit", "20", "--seed", "1",
            "--store", str(store), *extra]  # fmt: skip
    p = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=180)
    out = p.stdout[-2000:] + p.stderr[-3000:]
    (folder,) = sorted((store / "zoo-commit-old-term").iterdir())
    results = json.loads((folder / "results.json").read_text())
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    figure = [op for op in history if op.get("f") == "start-figure-eight"]
    return p.returncode, results, figure, out


def test_commit_old_term_is_caught_as_divergent_state_machines(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rc, results, figure, out = run(store)
    assert rc == 1, out
    safety = results["checkers"]["raft-safety"]
    assert safety["valid"] is False, out
    kinds = {v["kind"] for v in safety["violations"]}
    assert "state-machine-safety" in kinds, kinds
    played = [op["value"] for op in figure if "error" not in op]
    assert played, figure
    first = played[0]
    # the old leader counted its old-term entry committed, and the node holding the newer
    # entry at that index was elected afterwards
    assert first["old_leader_commit"] >= first["index"]
    assert first["third_leader"] == first["new_leader"]
    sms = next(v for v in safety["violations"] if v["kind"] == "state-machine-safety")
    assert sms["index"] == first["index"] and first["old_leader"] in sms["nodes"]
    assert procs_naming(str(store)) == []


def test_correct_build_is_valid_under_the_same_schedule(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rc, results, figure, out = run(store, "--bug", "none")
    assert rc == 0, out
    assert results["valid"] is True
    committed = [op["value"] for op in figure if "error" not in op and op["value"]["old_leader_commit"] >= op["value"]["index"]]
    assert committed, figure
    for v in committed:
        # without the bug the old leader committed only once the other follower held its
        # new-term entry, so the node holding the conflicting entry could not win again
        assert v["third_leader"] != v["new_leader"], v
    assert procs_naming(str(store)) == []
