"""`faultline soak`: tests back to back for a time budget, one verdict, a trend.

Each run is a `faultline run` subprocess (harness.campaign.run) with a seed derived from a
printed master seed, rotating through the configs and fault mixes. A failing run never stops
the soak; a crashed run (exit 3) is retried once and counted apart from anomalies. After every
run the soak summary is rewritten, the run is kept whole, compacted or removed (--keep), the
store is pruned to its bound, and store/index.html re-rendered. SIGTERM/SIGINT: the current
run is stopped the way `faultline run` stops (healed, torn down, checked), then the summary is
written; a second signal aborts the current run at once.

Exit code: 1 any anomaly, else 2 any unknown, else 3 any infrastructure error, else 0.
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import reports
from checkers.result import UNKNOWN
from checkers.results import Results
from harness.campaign import soak_trend
from harness.campaign.run import RunRecord, RunRequest, read_results, run_with_retry
from harness.campaign.soak_policy import (
    KEEP_MODES,
    SoakError,
    StoredRun,
    compact_run,
    keep_decision,
    parse_duration,
    parse_mix,
    prune_plan,
    rotation,
    run_seed,
    tree_size,
)
from harness.campaign.soak_summary import SUMMARY_FILE, SoakRun, SoakSummary, write_junit
from harness.run import config
from harness.run.config import ConfigError
from harness.run.signals import StopOnSignal
from harness.run.store import link_latest

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "local.yaml"
#: Soak records live in store/soak/<YYYYmmddTHHMMSS>-<master seed>/ (not a test folder: the
#: index lists only folders holding test.yaml / history.jsonl / results.json).
SOAK_DIR = "soak"
TREND_FILE = "soak.html"


def _parser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"faultline {cmd}", description="run tests back to back for a time budget"
    )
    p.add_argument(
        "configs",
        nargs="*",
        help=f"YAML test configs to rotate through (default {DEFAULT_CONFIG.name})",
    )
    p.add_argument("--duration", default="8h", help="time budget: 8h, 30m, 90s, 1h30m (default 8h)")
    p.add_argument("--max-runs", type=int, help="stop after N runs")
    p.add_argument("--keep", choices=KEEP_MODES, default="passing",
                   help="passing (default): passing runs kept as a compact summary; failing: passing "
                        "runs removed; all: every run kept whole. Failing/unknown runs are always kept whole")  # fmt: skip
    p.add_argument("--store", default="store", help="store folder (default store)")
    p.add_argument(
        "--master-seed", type=int, help="seed of the whole soak (default: random, printed)"
    )
    p.add_argument("--mix", action="append", default=[],
                   help="a fault mix to rotate through, e.g. partition,kill (repeatable; default: each config's own)")  # fmt: skip
    p.add_argument("--time-limit", type=float, help="override each run's time limit (seconds)")
    p.add_argument("--junit", help="write a JUnit XML file, one test case per run")
    p.add_argument(
        "--max-store-mb", type=float, help="prune the oldest passing runs beyond this store size"
    )
    p.add_argument(
        "--run-timeout", type=float, default=1800.0, help="kill a run that takes longer (seconds)"
    )
    return p


class Soak:
    def __init__(self, ns: argparse.Namespace, stop: threading.Event) -> None:
        self.ns = ns
        self.stop = stop
        self.store = Path(ns.store).resolve()
        self.configs = [Path(c).resolve() for c in ns.configs] or [DEFAULT_CONFIG]
        self.mixes = [parse_mix(m) for m in ns.mix]
        for c in self.configs:  # a typo should fail now, not as hours of crashed runs
            checks: list[list[str] | None] = list(self.mixes) or [None]
            for mix in checks:
                overrides: dict[str, Any] = {} if mix is None else {"nemesis.faults": mix}
                if ns.time_limit is not None:
                    overrides["time_limit"] = ns.time_limit
                    overrides["warmup"] = min(5.0, ns.time_limit / 4)  # as `faultline run` does
                try:
                    config.load(c, overrides)
                except ConfigError as e:
                    raise SoakError(str(e)) from None
        self.duration = parse_duration(ns.duration)
        if ns.max_runs is not None and ns.max_runs < 1:
            raise SoakError(f"--max-runs: must be >= 1, got {ns.max_runs}")
        self.master_seed = (
            ns.master_seed
            if ns.master_seed is not None
            else random.SystemRandom().randrange(1, 2**31)
        )
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.dir = self.store / SOAK_DIR / f"{stamp}-{self.master_seed}"
        self.summary = SoakSummary(
            master_seed=self.master_seed,
            configs=[str(c) for c in self.configs],
            mixes=self.mixes,
            keep=ns.keep,
            duration_s=self.duration,
            max_runs=ns.max_runs,
            store=str(self.store),
        )

    # ---- the loop ----

    def run(self) -> SoakSummary:
        self.dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            index = 0
            while True:
                why = self._why_stop(index, time.monotonic() - t0)
                if why is not None:
                    self.summary.stopped_by = why
                    break
                self._one(index)
                index += 1
        except KeyboardInterrupt:
            log.warning("second signal: the current run was aborted")
            self.summary.stopped_by = "signal"
        finally:
            self.summary.finished = time.time()
            self._write()
            (self.dir / "soak-summary.txt").write_text(self.summary.text() + "\n")
            if self.ns.junit:
                write_junit(self.summary, Path(self.ns.junit))
            self._render_index()
        return self.summary

    def _why_stop(self, index: int, elapsed: float) -> str | None:
        if self.stop.is_set():
            return "signal"
        if self.ns.max_runs is not None and index >= self.ns.max_runs:
            return "max-runs"
        if self.summary.runs:
            # do not start a run that would likely overrun the budget
            mean = statistics.mean(r.elapsed_s for r in self.summary.runs)
            if elapsed + mean > self.duration:
                return "duration"
        return None

    def _one(self, index: int) -> None:
        slot = rotation(self.configs, self.mixes, index)
        seed = run_seed(self.master_seed, index)
        flags: list[str] = []
        if slot.mix is not None:
            flags += ["--nemesis", ",".join(slot.mix) or "none"]
        if self.ns.time_limit is not None:
            flags += ["--time-limit", str(self.ns.time_limit)]
        req = RunRequest(
            slot.config,
            seed,
            self.store,
            self.dir / "runs" / f"{index:04d}",
            flags,
            self.ns.run_timeout,
        )
        mix = "config's faults" if slot.mix is None else (",".join(slot.mix) or "none")
        print(f"soak run {index}: {slot.config.name} seed {seed} faults {mix}", flush=True)
        final, first = run_with_retry(req, self.stop)
        run = self._record(index, slot.mix, final, first)
        self._keep(run)
        self.summary.runs.append(run)
        self._prune()
        self._relink_latest()
        self._write()
        self._render_index()
        said = "" if run.verdict == "valid" else f" ({run.message})"
        print(
            f"soak run {index}: {run.verdict}{said} in {run.elapsed_s:.0f}s: {run.run_dir}",
            flush=True,
        )
        if self.stop.is_set():
            self.summary.stopped_by = "signal"

    def _record(
        self, index: int, mix: tuple[str, ...] | None, rec: RunRecord, first: RunRecord | None
    ) -> SoakRun:
        test = rec.run_dir.parent.name if rec.run_dir is not None else Path(rec.config).stem
        found = rec.results if rec.results is not None else Results(UNKNOWN)  # unreadable: nothing found
        if rec.verdict == "infra":
            message = rec.failure or "run failed"
        else:
            message = found.message()
        return SoakRun(
            index=index,
            config=rec.config,
            test=test,
            seed=rec.seed,
            mix=list(mix) if mix is not None else None,
            verdict=rec.verdict,
            exit_code=rec.exit_code,
            run_dir=str(rec.run_dir) if rec.run_dir is not None else None,
            started=rec.started,
            elapsed_s=rec.elapsed + (first.elapsed if first is not None else 0.0),
            anomalies=found.anomaly_kinds(),
            unknown=found.unknown_checkers(),
            message=message,
            throughput=found.throughput,
            retried=first is not None,
            first_attempt=(
                {"run_dir": str(first.run_dir) if first.run_dir else None, "failure": first.failure}
                if first is not None
                else None
            ),
            interrupted=rec.interrupted,
        )

    def _write(self) -> None:
        self.summary.write(self.dir / SUMMARY_FILE)
        soak_trend.render(self.summary, self.dir / TREND_FILE)

    # ---- keeping and pruning ----

    def _keep(self, run: SoakRun) -> None:
        decision = keep_decision(self.ns.keep, run.verdict)
        if run.run_dir is None or decision == "full":
            return
        path = Path(run.run_dir)
        if decision == "compact":
            freed = compact_run(path)
            log.info("%s: compacted (%d kB freed)", path, freed // 1024)
            run.kept = "compact"
        else:
            shutil.rmtree(path, ignore_errors=True)
            run.kept = "removed"

    def _prune(self) -> None:
        if self.ns.max_store_mb is None:
            return
        limit = int(self.ns.max_store_mb * 1024 * 1024)
        stored = list(stored_runs(self.store))
        latest = self.store / "latest"
        protect = [latest.resolve()] if latest.is_symlink() else []
        plan = prune_plan(stored, limit, protect)
        for path in plan:
            log.info("store above %.0f MB: pruning passing run %s", self.ns.max_store_mb, path)
            shutil.rmtree(path, ignore_errors=True)
        pruned = {str(p) for p in plan}
        for r in self.summary.runs:
            if r.run_dir in pruned:
                r.kept = "pruned"
        remaining = sum(s.size for s in stored if str(s.path) not in pruned)
        if remaining > limit:
            log.warning("store still holds %.0f MB of failing/unknown runs (bound %.0f MB)",
                        remaining / 2**20, self.ns.max_store_mb)  # fmt: skip

    def _relink_latest(self) -> None:
        """Point store/latest at the newest run left when the one it named was removed."""
        latest = self.store / "latest"
        if not latest.is_symlink() or latest.exists():
            return
        left = stored_runs(self.store)
        if left:
            newest = max(left, key=lambda r: r.stamp)
            link_latest(self.store, newest.path)

    def _render_index(self) -> None:
        try:
            reports.render_index(self.store)
        except Exception as e:  # the soak's verdict stands without the index
            log.warning("store index not rendered: %s: %s", type(e).__name__, e)


def stored_runs(store: Path) -> list[StoredRun]:
    """Run folders store/<test>/<run>/ with their size and whether they passed."""
    out: list[StoredRun] = []
    if not store.is_dir():
        return out
    for test_dir in sorted(
        p for p in store.iterdir() if p.is_dir() and not p.is_symlink() and p.name != SOAK_DIR
    ):
        for run_dir in sorted(p for p in test_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            if not (run_dir / "test.yaml").is_file():
                continue
            results = read_results(run_dir) if (run_dir / "results.json").is_file() else None
            passing = results is not None and results.valid is True
            out.append(StoredRun(run_dir.resolve(), tree_size(run_dir), run_dir.name, passing))
    return out


def main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    ns = _parser(cmd).parse_args(rest)
    stop = threading.Event()
    try:
        soak = Soak(ns, stop)
    except SoakError as e:
        print(f"faultline {cmd}: {e}", file=sys.stderr)
        return 3
    print(
        f"soak: master seed {soak.master_seed} (replay with --master-seed {soak.master_seed})",
        flush=True,
    )
    print(f"soak: record in {soak.dir}", flush=True)
    with StopOnSignal(stop, "finishing the current run..."):
        summary = soak.run()
    print(summary.text())
    print(f"summary: {soak.dir / SUMMARY_FILE}")
    if ns.junit:
        print(f"junit: {ns.junit}")
    return summary.exit_code()
