"""Size bound: the report of a 100,000-operation run stays under 20 MB (a bound, not a timing)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reports import render_run
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
    assert len(data["s"]) == 100_000  # every op is in the timeline, none dropped to fit
    assert 'class="banner anomaly"' in html  # the raft-safety violation still decides the verdict
