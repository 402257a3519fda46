"""`faultline zoo`: run the bug-zoo matrix and write its table.

Each entry of configs/zoo/matrix.yaml runs once per seed (seeds `--seed-base`,
`--seed-base`+1, ...) as a `faultline run` subprocess, until `--seeds` runs are done or the
entry's wall-clock `--budget` would be exceeded. The outcome of every run is judged against
the entry's expectation; the table (detection rate and median time to detection per bug,
verdicts of the correct systems, every run) is printed, spliced into `--out` between its
markers, and the raw outcomes saved as `<store>/zoo/<stamp>/zoo-results.json`.

Exit code: 0 every entry met its expectation, 1 a bug went undetected in some run or a correct
system was reported invalid, 3 nothing produced a verdict.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import yaml

from checkers.result import UNKNOWN
from checkers.results import Results
from checkers.rundata import StoredRun
from harness.campaign.run import RunRequest, run_with_retry
from harness.campaign.zoo_matrix import MATRIX, Entry, MatrixError, describe_faults, load, select
from harness.campaign.zoo_table import (
    EntryReport,
    ZooRun,
    expected_found,
    load_reports,
    merge,
    render,
    splice,
)
from harness.run.signals import StopOnSignal

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
RESULTS_FILE = "zoo-results.json"


def _parser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"faultline {cmd}", description="run the bug-zoo matrix")
    p.add_argument(
        "--budget", type=float, default=600.0, help="wall-clock seconds per entry (default 600)"
    )
    p.add_argument("--seeds", type=int, default=3, help="runs (seeds) per entry (default 3)")
    p.add_argument("--seed-base", type=int, default=1, help="first seed (default 1)")
    p.add_argument("--only", default="", help="comma-separated entry names (default: all)")
    p.add_argument("--time-limit", type=float, help="override each run's time limit (seconds)")
    p.add_argument("--store", default="store", help="store folder (default store)")
    p.add_argument("--out", help="Markdown file to splice the table into (e.g. docs/bug-zoo.md)")
    p.add_argument("--merge", help="zoo-results.json of an earlier invocation: its runs count too")
    p.add_argument("--section", default="zoo", help="generated section name in --out (default zoo)")
    p.add_argument(
        "--matrix", default=str(MATRIX), help="matrix file (default configs/zoo/matrix.yaml)"
    )
    p.add_argument(
        "--run-timeout", type=float, default=900.0, help="kill a run that takes longer (seconds)"
    )
    return p


class Zoo:
    def __init__(self, ns: argparse.Namespace, entries: list[Entry], stop: threading.Event) -> None:
        self.ns = ns
        self.entries = entries
        self.stop = stop
        self.store = Path(ns.store).resolve()
        self.dir = self.store / "zoo" / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.reports: list[EntryReport] = []

    def run(self) -> list[EntryReport]:
        self.dir.mkdir(parents=True, exist_ok=True)
        for entry in self.entries:
            if self.stop.is_set():
                break
            self.reports.append(self._entry(entry))
            self._save()
        return self.reports

    def _entry(self, entry: Entry) -> EntryReport:
        raw = entry.raw_config()
        if self.ns.time_limit is not None:
            raw["time_limit"] = self.ns.time_limit
        rep = EntryReport(
            name=entry.name,
            is_bug=entry.is_bug,
            bugs=list(raw.get("bugs") or []),
            db=str(raw.get("db", "raftkv")),
            faults=describe_faults(raw),
            expect=entry.expect.describe(),
        )
        if entry.needs == "root" and os.geteuid() != 0:
            rep.skipped = "needs root (this entry runs on network namespaces)"
            print(f"zoo {entry.name}: skipped, {rep.skipped}", flush=True)
            return rep
        config = self.dir / "configs" / f"{entry.name}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        started = time.monotonic()
        for k in range(self.ns.seeds):
            if self.stop.is_set():
                break
            spent = time.monotonic() - started
            if rep.runs and spent + statistics.mean(r.elapsed_s for r in rep.runs) > self.ns.budget:
                log.info(
                    "zoo %s: budget of %.0fs spent after %d runs",
                    entry.name,
                    self.ns.budget,
                    len(rep.runs),
                )
                break
            seed = self.ns.seed_base + k
            req = RunRequest(
                config,
                seed,
                self.store,
                self.dir / "runs" / f"{entry.name}-{seed}",
                [],
                self.ns.run_timeout,
            )
            rec, first = run_with_retry(req, self.stop)
            results = rec.results
            found = results if results is not None else Results(UNKNOWN)  # unreadable: nothing found
            boot = StoredRun(rec.run_dir).first_boot_ts() if rec.run_dir is not None else None
            expected = (
                expected_found(entry.expect, results) if entry.is_bug else rec.verdict == "valid"
            )
            run = ZooRun(
                entry=entry.name,
                seed=seed,
                verdict=rec.verdict,
                caught_by=found.caught_by(),
                anomalies=found.anomaly_kinds(),
                expected=expected and rec.verdict != "infra",
                detection_s=found.detection_s(boot) if entry.is_bug else None,
                elapsed_s=rec.elapsed + (first.elapsed if first is not None else 0.0),
                run_dir=str(rec.run_dir) if rec.run_dir is not None else None,
                message=(rec.failure or "run failed")
                if rec.verdict == "infra"
                else found.message(),
            )
            rep.runs.append(run)
            print(
                f"zoo {entry.name} seed {seed}: {run.verdict}, {'as expected' if run.expected else 'NOT as expected'}"
                f" ({run.message[:120]}) in {run.elapsed_s:.0f}s",
                flush=True,
            )
        return rep

    def _save(self) -> None:
        data = {
            "seeds": self.ns.seeds,
            "seed_base": self.ns.seed_base,
            "budget_s": self.ns.budget,
            "time_limit": self.ns.time_limit,
            "entries": [r.to_json() for r in self.reports],
        }
        tmp = self.dir / f".{RESULTS_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.dir / RESULTS_FILE)

    def header(self) -> str:
        cpu = platform.processor() or platform.machine()
        ns = self.ns
        flags = f"--seeds {ns.seeds} --seed-base {ns.seed_base} --budget {ns.budget:.0f}"
        if ns.time_limit is not None:
            flags += f" --time-limit {ns.time_limit:.0f}"
        merged = f", merged with the runs of {Path(ns.merge).parent.name}" if ns.merge else ""
        limit = (
            f"{ns.time_limit:.0f} s" if ns.time_limit is not None else "each config's time_limit"
        )
        return (
            f"Generated by `faultline zoo {flags}`{merged} on "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({os.cpu_count()} cores, {cpu}). "
            f"Each run has {limit} of load; N per entry is the run count in its row (seeds under "
            "*Every run*). Time to detection: seconds from the start of the load to the completion "
            "of the first op that cannot be linearized, or from the first node boot to the first "
            "Raft safety violation."
        )


def exit_code(reports: list[EntryReport]) -> int:
    ran = [r for r in reports if r.skipped is None]
    if not any(r.completed() for r in ran):
        return 3
    return 0 if all(r.ok() for r in ran if r.completed()) else 1


def main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    ns = _parser(cmd).parse_args(rest)
    try:
        if ns.seeds < 1:
            raise MatrixError(f"--seeds: must be >= 1, got {ns.seeds}")
        entries = select(load(Path(ns.matrix)), [s for s in ns.only.split(",") if s])
    except MatrixError as e:
        print(f"faultline {cmd}: {e}", file=sys.stderr)
        return 3
    stop = threading.Event()
    zoo = Zoo(ns, entries, stop)
    print(
        f"zoo: {len(entries)} entries, up to {ns.seeds} seeds each; record in {zoo.dir}", flush=True
    )
    with StopOnSignal(stop, "finishing the current run..."):
        try:
            reports = zoo.run()
        except KeyboardInterrupt:
            reports = zoo.reports
    if ns.merge:
        try:
            earlier = load_reports(json.loads(Path(ns.merge).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"faultline {cmd}: --merge {ns.merge}: cannot read: {e}", file=sys.stderr)
            return 3
        reports = merge(earlier, reports)
        zoo.reports = reports
        zoo._save()
    table = render(reports, zoo.header())
    (zoo.dir / "bug-zoo.md").write_text(table)
    print(table)
    if ns.out:
        out = Path(ns.out)
        doc = out.read_text() if out.exists() else ""
        out.write_text(splice(doc, table, ns.section))
        print(f"table written to {out}")
    print(f"results: {zoo.dir / RESULTS_FILE}")
    return exit_code(reports)
