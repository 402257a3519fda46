"""Report rendering: time and size of report.html for simulated runs of N operations, and the
time headless Chromium takes to load the page and run its scripts.

Run folders come from the report tests' simulator (tests/support/runfactory.py: 5 workers,
3 keys, a partition and a kill, node events with a restart, results from the project's Raft
safety checker; the linearizability search is left out, its cost belongs to the checker).

    .venv/bin/python bench/report_bench.py [--ops 10000 100000] [--no-browser]
    .venv/bin/python bench/report_bench.py --index 8 [--ops 100000]
"""

from __future__ import annotations

import argparse
import json
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

from checkers import stats  # noqa: E402
from reports import render_index, render_run  # noqa: E402
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


def index_store(store: Path, runs: int, n_ops: int, analysed: bool) -> None:
    """`runs` run folders of `n_ops` operations; analysed: results.json carries the stats
    checker's entry (as after `faultline run`), else no results.json (a killed controller)."""
    for i in range(runs):
        run = build_run(store, n_ops=n_ops, seed=i + 1, stamp=f"20261126T{i:02d}0000", linear=False,
                        with_events=False)
        if analysed:
            run.results["checkers"]["stats"] = stats.check(run.history).to_json()
            (run.run_dir / "results.json").write_text(json.dumps(run.results))
        else:
            (run.run_dir / "results.json").unlink()


def bench_index(runs: int, ops: list[int], repeat: int = 3) -> None:
    print("| runs | ops per run | history MB per run | results.json | index wall s (best of 3) | index CPU s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in ops:
            for analysed in (True, False):
                store = Path(tmp) / f"i{n}-{analysed}"
                index_store(store, runs, n, analysed)
                mb = next(store.glob("*/*/history.jsonl")).stat().st_size / 1e6
                best_wall, best_cpu = float("inf"), float("inf")
                for _ in range(repeat):
                    wall0, cpu0 = time.monotonic(), _cpu()
                    render_index(store)
                    best_wall = min(best_wall, time.monotonic() - wall0)
                    best_cpu = min(best_cpu, _cpu() - cpu0)
                what = "with stats" if analysed else "absent"
                print(f"| {runs} | {n} | {mb:.1f} | {what} | {best_wall:.2f} | {best_cpu:.2f} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--index", type=int, metavar="RUNS", help="time the store index of RUNS runs instead")
    ns = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if ns.index:
        bench_index(ns.index, ns.ops)
        return 0
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
