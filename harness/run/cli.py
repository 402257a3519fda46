"""`faultline run | analyze`: the user-facing commands of the run engine (`zoo` and `soak`
live in harness.campaign.zoo / harness.campaign.soak and drive `faultline run` as subprocesses).

Exit codes: 0 valid, 1 an anomaly was found, 2 unknown, 3 the run itself failed. Ctrl-C or
SIGTERM stops a run: faults are healed, nodes torn down, and what was recorded is checked; a
second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from checkers.results import Results
from harness import db as dbs
from harness.campaign.junit import write_junit
from harness.nemesis import registry
from harness.nemesis.schedule import SCHEDULE_FILE, FaultEvent, read_schedule
from harness.protocols import HarnessError
from harness.run import analysis, config, leftovers
from harness.run.runner import Outcome, Progress, Run
from harness.run.signals import StopOnSignal

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "local.yaml"


def _parser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"faultline {cmd}", description="run a test against a cluster and check it")
    p.add_argument("config", nargs="?", help=f"YAML test config (default {DEFAULT_CONFIG.name})")
    p.add_argument("--name", help="test name (store folder)")
    p.add_argument("--db", help=f"the system under test: {' | '.join(dbs.registered())}, or a plug-in module")
    p.add_argument("--provider", help="local | netns | ssh | docker")
    p.add_argument("--nodes", help="node count (3) or names (n1,n2,n3)")
    p.add_argument("--workload", help="kv | register | log")
    p.add_argument("--nemesis", help=f"comma-separated faults: {registry.help_line()} | none")
    p.add_argument("--nemesis-interval", type=float, help="seconds between faults")
    p.add_argument("--time-limit", type=float, help="seconds of client load")
    p.add_argument("--concurrency", help="client workers: N or a multiple of nodes like 2n")
    p.add_argument("--rate", type=float, help="total client ops/s (0 = unlimited)")
    p.add_argument("--seed", type=int, help="random seed (default: random, saved in test.yaml)")
    p.add_argument("--bug", action="append", help="enable a raftkv bug switch (repeatable; 'none' clears the config's)")
    p.add_argument("--store", help="store folder (default store)")
    p.add_argument("--test-count", type=int, help="run the test K times")
    p.add_argument("--junit", help="write a JUnit XML summary to FILE")
    p.add_argument("--replay", metavar="RUN_DIR",
                   help="run a stored run again: its test.yaml (seed included) and its recorded fault schedule")
    return p


def overrides(ns: argparse.Namespace) -> dict[str, Any]:
    """Flags as dotted config overrides (validated with the file)."""
    out: dict[str, Any] = {}
    direct = {
        "name": "name", "db": "db", "provider": "provider", "nodes": "nodes", "workload": "workload",
        "time_limit": "time_limit", "concurrency": "concurrency", "rate": "rate", "seed": "seed",
        "store": "store", "test_count": "test_count", "junit": "junit",
        "nemesis_interval": "nemesis.interval",
    }  # fmt: skip
    for attr, path in direct.items():
        v = getattr(ns, attr)
        if v is not None:
            out[path] = v
    if ns.nodes is not None and "," in ns.nodes:
        out["nodes"] = ns.nodes.split(",")
    if ns.nemesis is not None:
        out["nemesis.faults"] = [] if ns.nemesis in ("none", "") else ns.nemesis.split(",")
    if ns.bug:
        out["bugs"] = [] if ns.bug == ["none"] else ns.bug
    if ns.time_limit is not None:
        # keep a short run valid: the warm-up shrinks with the time limit
        out.setdefault("warmup", min(5.0, ns.time_limit / 4))
    return out


class _ProgressPrinter:
    """A live progress line on stderr (rewritten in place on a terminal, every 5 s otherwise)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K" + p.line())
            sys.stderr.flush()
        elif time.monotonic() - self._last >= 5.0:
            self._last = time.monotonic()
            sys.stderr.write(p.line() + "\n")
            sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def print_summary(run_dir: Path, results: Results | None, report: Path | None, failure: str | None) -> None:
    if failure:
        print(f"run failed: {failure}")
    for res in results.checkers.values() if results is not None else ():
        said = res.message()
        extra = f"  ({said})" if said else ""
        print(f"  {res.name:<16} {_verdict(res.valid)}{extra}")
    overall = results.valid if results is not None else None
    print(f"verdict: {_verdict(overall) if failure is None else 'RUN FAILED'}")
    print(f"run folder: {run_dir}")
    print(f"report: {report if report is not None else 'missing (reports not available; see controller.log)'}")


def _verdict(v: Any) -> str:
    return {True: "valid", False: "INVALID"}.get(v, "unknown") if isinstance(v, bool) else "unknown"


def _combine(codes: list[int]) -> int:
    """3 beats 1 beats 2 beats 0: a failed run matters most, then an anomaly."""
    for c in (3, 1, 2):
        if c in codes:
            return c
    return 0


def cmd_run(argv: list[str], cmd: str = "run") -> int:
    ns = _parser(cmd).parse_args(argv)
    replay: list[FaultEvent] | None = None
    replay_of: Path | None = None
    if ns.replay is not None:
        if ns.config is not None:
            print("faultline: give a CONFIG or --replay RUN_DIR, not both", file=sys.stderr)
            return 3
        replay_of = Path(ns.replay).resolve()
        path = str(replay_of / "test.yaml")
        try:
            replay = read_schedule(replay_of / SCHEDULE_FILE)
        except ValueError as e:
            print(f"faultline: {e}", file=sys.stderr)
            return 3
    else:
        path = ns.config or str(DEFAULT_CONFIG)
    try:
        test = config.load(path, overrides(ns))
    except HarnessError as e:
        print(f"faultline: {e}", file=sys.stderr)
        return 3
    outcomes: list[Outcome] = []
    with StopOnSignal() as sig:
        for i in range(int(test["test_count"])):
            t = dict(test)
            if i > 0:
                t["seed"] = int(test["seed"]) + i
            if int(test["test_count"]) > 1:
                print(f"== run {i + 1}/{test['test_count']} (seed {t['seed']})")
            printer = _ProgressPrinter()
            try:
                outcome = Run(t, sig.stop, replay, replay_of).execute(printer)
            finally:
                printer.done()
            outcomes.append(outcome)
            print_summary(outcome.run_dir, outcome.results, outcome.report, outcome.failure)
            if sig.stop.is_set():
                break
    if test.get("junit"):
        write_junit(Path(test["junit"]), str(test["name"]), [(o.run_dir, o.results, o.failure) for o in outcomes])
        print(f"junit: {test['junit']}")
    return _combine([o.exit_code for o in outcomes])


def cmd_analyze(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="faultline analyze", description="re-run the checkers and the report on a stored run")
    p.add_argument("run_dir", help="a run folder (store/<test>/<ts>-<seed>) or store/latest")
    p.add_argument("--junit", help="write a JUnit XML summary to FILE")
    ns = p.parse_args(argv)
    run_dir = Path(ns.run_dir).resolve()
    if not (run_dir / "history.jsonl").exists():
        print(f"faultline analyze: {run_dir}: no history.jsonl (not a run folder)", file=sys.stderr)
        return 3
    leftovers.reap_run(run_dir)  # a controller killed midway leaves its nodes running
    try:
        results = analysis.analyze(run_dir)
    except ValueError as e:
        print(f"faultline analyze: {e}", file=sys.stderr)
        return 3
    report = analysis.render_report(run_dir)
    print_summary(run_dir, results, report, None)
    if ns.junit:
        write_junit(Path(ns.junit), run_dir.parent.name, [(run_dir, results, None)])
    return analysis.exit_code(results.valid)


def main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        return cmd_run(rest)
    if cmd == "analyze":
        return cmd_analyze(rest)
    print(f"faultline: harness.run.cli does not handle {cmd!r}", file=sys.stderr)
    return 3
