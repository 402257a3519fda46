"""Report rendering: time and size of report.html for simulated runs of N operations, and the
time headless Chromium takes to load the page and run its scripts.

Run folders come from the report tests' simulator (tests/support/runfactory.py: 5 workers,
3 keys, a partition and a kill, node events with a restart, results from the project's Raft
safety checker; the linearizability search is left out, its cost belongs to the checker).

    .venv/bin/python bench/report_bench.py [--ops 10000 100000] [--no-browser]
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reports import render_run  # noqa: E402
from tests.support.runfactory import build_run  # noqa: E402

log = logging.getLogger("report_bench")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def browser_load(page: Path, profile: Path) -> tuple[float, str]:
    """Seconds until Chromium dumped the DOM (scripts done), and the page's script status."""
    started = time.monotonic()
    p = subprocess.run(["/usr/bin/chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                        page.as_uri()], capture_output=True, text=True, timeout=180, start_new_session=True)
    elapsed = time.monotonic() - started
    m = re.search(r'id="render-status" data-status="([^"]+)"', p.stdout)
    return elapsed, m.group(1) if m else "no status"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--no-browser", action="store_true")
    ns = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| ops | render wall s | render CPU s | report MB | Chromium load s | scripts |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns.ops:
            run = build_run(Path(tmp) / f"s{n}", n_ops=n, seed=1, two_leaders=True, linear=False)
            wall0, cpu0 = time.monotonic(), _cpu()
            out = render_run(run.run_dir)
            wall, cpu = time.monotonic() - wall0, _cpu() - cpu0
            size = out.stat().st_size / 1e6
            load, status = ("–", "–")
            if not ns.no_browser:
                secs, status = browser_load(out, Path(tmp) / "profile")
                load = f"{secs:.1f}"
            print(f"| {n} | {wall:.1f} | {cpu:.1f} | {size:.1f} | {load} | {status} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
