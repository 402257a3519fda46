"""Size bound: the report of a 100,000-operation run stays under 20 MB (a bound, not a timing)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reports import render_run
from reports.timeline import MAX_TIMELINE_OPS
from tests.support.runfactory import build_run

MAX_BYTES = 20_000_000


@pytest.mark.slow
def test_report_of_100k_ops_is_under_20_mb(tmp_path: Path) -> None:
    # the linearizability search is skipped here: its cost is the checker's, not the report's
    run = build_run(tmp_path, n_ops=100_000, seed=5, two_leaders=True, linear=False)
    out = render_run(run.run_dir)
    size = out.stat().st_size
    assert size < MAX_BYTES, f"report is {size / 1e6:.1f} MB"
    html = out.read_text()
    found = re.search(r'id="timeline-data">(.*?)</script>', html, re.S)
    assert found is not None
    data = json.loads(found.group(1))
    # every op is in the timeline, none dropped to fit: 100,000 is the bound (beyond it the
    # timeline draws a sample, tests/reports/test_sampling.py)
    assert MAX_TIMELINE_OPS >= 100_000 and len(data["s"]) == 100_000
    assert 'id="timeline-sampled"' not in html
    assert 'class="banner anomaly"' in html  # the raft-safety violation still decides the verdict
