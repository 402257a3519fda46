"""A real `faultline run` of raftkv with clock faults of every kind mixed with drift-isolate:
the final heal leaves every node's clock true (as each node's own clock agent applied it),
the run folder keeps each node's clock log and record, and the report draws the clock panel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.env import find_libfaketime, procs_naming

pytestmark = pytest.mark.slow

CONFIG = {
    "name": "clock-heal",
    "time_limit": 10,
    "warmup": 1,
    "rate": 40,
    "nemesis": {
        "faults": ["clock", "drift-isolate"],
        "schedule": "mix",
        "interval": 1.0,
        "duration": 2.0,
        "clocks": ["jump", "strobe", "rate"],
        "clock_targets": ["one", "minority"],
        "clock_rates": [0.5, 2.0],
        "max_clock_offset": 3,
        "strobe_period": 0.1,
        "drift_targets": ["one"],
        "drift_before_isolate": 0.5,
    },
}


def test_heal_leaves_every_clock_true(store: Path, tmp_path: Path) -> None:
    if find_libfaketime() is None:
        pytest.skip("needs libfaketime (Debian package libfaketime)")
    cfg = tmp_path / "clock.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    p = subprocess.run([sys.executable, "-m", "harness", "run", str(cfg), "--store", str(store), "--seed", "6"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    run_dir = (store / "latest").resolve()
    history = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    nemesis = [op for op in history if op["process"] == "nemesis"]
    kinds = {op["value"].get("kind") for op in nemesis if op["f"] == "start-clock" and "error" not in op}
    assert kinds == {"jump", "rate", "strobe"}, kinds  # seed 6's schedule has each
    assert any(op["f"] == "isolate" and "error" not in op for op in nemesis)
    off = [c for op in nemesis[:-1] for c in (op["value"].get("clocks") or {}).values() if abs(c["offset_s"]) > 0.1]
    assert off, "no clock was ever off true time: the heal would prove nothing"
    heal = nemesis[-1]
    assert heal["f"] == "heal" and "error" not in heal, heal
    assert heal["value"]["clocks_reset"] == ["n1", "n2", "n3"]
    for node in ("n1", "n2", "n3"):
        folder = run_dir / "nodes" / node
        ops = [line for line in (folder / "clock.log").read_text().splitlines()[1:] if line.strip()]
        assert ops[-1] == "reset", f"{node}: the last clock operation was {ops[-1]!r}"
        last = (folder / "clock.applied").read_text().splitlines()[-1].split()
        applied, real, clock, rate = int(last[1]), float(last[2]), float(last[3]), float(last[4])
        # the node's own agent applied every operation, the reset last: its clock is true time
        assert applied == len(ops), f"{node}: applied {applied} of {len(ops)} clock operations"
        assert rate == 1.0 and abs(clock - real) < 1e-3, f"{node}: clock {clock - real:+.6f} s off, rate {rate}"
    html = (run_dir / "report.html").read_text()
    assert '<section id="clocks">' in html and 'id="elections"' in html
    assert procs_naming(str(store)) == []
