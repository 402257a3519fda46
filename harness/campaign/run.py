"""One test run of a campaign (soak, zoo) as a `faultline run` subprocess.

A subprocess per run isolates the campaign from a crashing run and gives each run the run
engine's own signal handling: a stop request is forwarded to the child as one SIGTERM, so the
child heals, tears down and checks as it does under CI. The child runs in its own session so a
signal sent to the campaign's process group reaches it only through this forwarding (a second
signal would make it abort without checking).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from checkers.results import Results, ResultsError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]

#: Exit codes of `faultline run`: 0 valid, 1 anomaly, 2 unknown, 3 the run itself failed.
VERDICTS = {0: "valid", 1: "anomaly", 2: "unknown", 3: "infra"}


@dataclass
class RunRequest:
    """What to run: a config file, a seed, a store, and extra `faultline run` flags."""

    config: Path
    seed: int
    store: Path
    log_prefix: Path  # the child's stdout/stderr go to <prefix>.out / <prefix>.err
    flags: list[str] = field(default_factory=list)
    hard_timeout: float = 1800.0  # seconds before the child's session is killed (last resort)

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "harness", "run", str(self.config),
            "--seed", str(self.seed), "--store", str(self.store), *self.flags,
        ]  # fmt: skip


@dataclass
class RunRecord:
    """The outcome of one attempt, read back from the child's output and results.json."""

    config: str
    seed: int
    exit_code: int
    run_dir: Path | None
    results: Results | None
    failure: str | None
    started: float  # wall clock
    elapsed: float  # seconds
    interrupted: bool = False

    @property
    def verdict(self) -> str:
        return VERDICTS.get(self.exit_code, "infra")


def parse_child_output(stdout: str) -> tuple[Path | None, str | None]:
    """(run folder, run failure message) from the printed summary of `faultline run`."""
    run_dir: Path | None = None
    failure: str | None = None
    for line in stdout.splitlines():
        if line.startswith("run folder: "):
            run_dir = Path(line[len("run folder: ") :].strip())
        elif line.startswith("run failed: "):
            failure = line[len("run failed: ") :].strip()
    return run_dir, failure


def read_results(run_dir: Path | None) -> Results | None:
    """The run's results; None (with a warning) when there are none or they are unreadable."""
    if run_dir is None:
        return None
    try:
        return Results.load(run_dir)
    except ResultsError as e:
        log.warning("%s", e)
        return None


def last_line(path: Path) -> str | None:
    """The last non-blank line of a (small) log file: a failed run's one-line reason."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1][:300] if lines else None


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_once(req: RunRequest, stop: threading.Event) -> RunRecord:
    """Run one test to completion; on `stop`, forward SIGTERM once and wait for the verdict."""
    req.log_prefix.parent.mkdir(parents=True, exist_ok=True)
    out_path = Path(f"{req.log_prefix}.out")
    err_path = Path(f"{req.log_prefix}.err")
    started, t0 = time.time(), time.monotonic()
    forwarded = False
    with out_path.open("wb") as out, err_path.open("wb") as err:
        log.info("run: %s", " ".join(req.argv()))
        proc = subprocess.Popen(
            req.argv(),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            start_new_session=True,
        )
        try:
            while proc.poll() is None:
                if time.monotonic() - t0 > req.hard_timeout:
                    log.error(
                        "run of %s seed %d exceeded %.0fs: killing it",
                        req.config,
                        req.seed,
                        req.hard_timeout,
                    )
                    _kill_session(proc)
                    break
                if forwarded:
                    time.sleep(0.2)  # the run is healing and checking: just wait for it
                elif stop.wait(0.2):
                    log.info("stop requested: forwarding SIGTERM to the run (pid %d)", proc.pid)
                    proc.send_signal(signal.SIGTERM)
                    forwarded = True
            code = proc.wait(30)
        except BaseException:
            _kill_session(proc)
            proc.wait(30)
            raise
    stdout = out_path.read_text(errors="replace")
    run_dir, failure = parse_child_output(stdout)
    if code not in VERDICTS and failure is None:
        failure = f"faultline run exited with {code} (see {err_path})"
    results = read_results(run_dir)
    if failure is None and code == 3:
        failure = last_line(err_path) or f"faultline run failed before checking (see {err_path})"
    return RunRecord(
        config=str(req.config),
        seed=req.seed,
        exit_code=code,
        run_dir=run_dir,
        results=results,
        failure=failure,
        started=started,
        elapsed=round(time.monotonic() - t0, 3),
        interrupted=forwarded,
    )


def run_with_retry(req: RunRequest, stop: threading.Event) -> tuple[RunRecord, RunRecord | None]:
    """(final attempt, first attempt if it crashed and was retried): an infrastructure failure
    (exit 3) is retried once with the same seed, unless a stop was requested."""
    first = run_once(req, stop)
    if first.verdict != "infra" or stop.is_set():
        return first, None
    log.warning("run of %s seed %d failed (%s): retrying once", req.config, req.seed, first.failure)
    retry = RunRequest(
        req.config,
        req.seed,
        req.store,
        Path(f"{req.log_prefix}-retry"),
        req.flags,
        req.hard_timeout,
    )
    return run_once(retry, stop), first
