"""One test run, start to finish: provision, start the DB, drive workers and the nemesis
through the phases, heal, check recovery, final reads, collect, tear down, check.

Phases: warm-up (clients only), faults (clients + nemesis) until the time limit, heal and
recover (the cluster must elect a leader and serve a write within `recovery_timeout`, else a
"recovery" finding), final reads. Teardown always runs, and whatever was recorded is checked.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from checkers.results import Results
from harness import db as dbs
from harness import providers
from harness.nemesis import registry
from harness.nemesis.core import Nemesis, run_schedule
from harness.nemesis.schedule import SCHEDULE_FILE, FaultEvent, fault_schedule, write_schedule
from harness.protocols import (
    DB,
    Client,
    ClockOperations,
    HarnessError,
    LeaderLookup,
    Provider,
    ReplicaCopies,
)
from harness.run import analysis, leftovers, store
from harness.run.generator import ClientGenerator
from harness.run.history import HistoryClosed, HistoryWriter
from workloads import get as get_workload

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: Keys the final reads look at, at most (the newest written; a soak writes many thousands).
FINAL_READ_KEYS = 1000


@dataclass
class Outcome:
    run_dir: Path
    results: Results | None
    report: Path | None
    failure: str | None = None
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.failure is not None or self.results is None:
            return 3
        return analysis.exit_code(self.results.valid)


@dataclass
class Progress:
    """What the live progress line shows."""

    phase: str = "setup"
    started: float = field(default_factory=time.monotonic)
    time_limit: float = 0.0
    history: HistoryWriter | None = None
    nemesis: Nemesis | None = None

    def line(self) -> str:
        el = time.monotonic() - self.started
        c = self.history.counts if self.history else {"ok": 0, "fail": 0, "info": 0}
        fault = self.nemesis.describe_active() if self.nemesis else "none"
        rem = max(0.0, self.time_limit - el)
        return (
            f"[{self.phase}] {el:5.1f}s elapsed, {rem:5.1f}s left | ok {c['ok']} fail {c['fail']} "
            f"info {c['info']} | fault: {fault}"
        )


def faultline_version() -> str:
    try:
        return metadata.version("faultline")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def versions(test: dict[str, Any]) -> dict[str, str]:
    out = {"python": platform.python_version(), "faultline": faultline_version(), "platform": platform.platform()}
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        out["git"] = rev.stdout.strip() if rev.returncode == 0 else "none"
    except (OSError, subprocess.TimeoutExpired):
        out["git"] = "none"
    return out


def client_worker(
    idx: int,
    concurrency: int,
    node: str,
    db: DB,
    test: dict[str, Any],
    gen: ClientGenerator,
    history: HistoryWriter,
) -> None:
    """One client worker with Jepsen's process semantics: an `info` retires the process id."""
    process = idx
    client = db.client(test)
    try:
        client.open(node)
        _drive_client(idx, concurrency, node, client, gen, history, process)
    except HistoryClosed:
        log.warning("worker %d: still busy when the history closed; its last op stays open", idx)
    finally:
        client.close()


def completion(op: dict[str, Any], res: dict[str, Any], process: int, node: str) -> dict[str, Any]:
    """The history record of an op's completion from the client's result: a read's value only
    when it is ok (an unknown read observed nothing); the error, if any."""
    done: dict[str, Any] = {"process": process, "type": res["type"], **op, "node": node}
    if op["f"] == "read":
        done["value"] = res.get("value") if res["type"] == "ok" else None
    if res.get("error"):
        done["error"] = res["error"]
    return done


def _drive_client(
    idx: int, concurrency: int, node: str, client: Client, gen: ClientGenerator, history: HistoryWriter, process: int
) -> None:
    while True:
        op = gen.next_op()
        if op is None:
            return
        history.append({"process": process, "type": "invoke", **op, "node": node})
        try:
            res = client.invoke(op)
        except Exception as e:  # unknown outcome: it may or may not have happened
            log.exception("worker %d: client raised", idx)
            res = {"type": "info", "error": f"{type(e).__name__}: {e}"}
        history.append(completion(op, res, process, node))
        if res["type"] == "info":
            process += concurrency
            client.close()
            client.open(node)


class Run:
    """One run. `replay` (the schedule of a stored run, harness.nemesis.schedule.read_schedule)
    replaces the schedule the seed would give."""

    def __init__(
        self, test: dict[str, Any], stop: threading.Event | None = None, replay: list[FaultEvent] | None = None,
        replay_of: Path | None = None,
    ) -> None:
        self.test = test
        self.stop = stop or threading.Event()
        self.replay = replay
        self.replay_of = replay_of
        self.progress = Progress(time_limit=float(test["time_limit"]))
        self.provider: Provider | None = None
        self.db: DB | None = None
        self.nemesis: Nemesis | None = None
        self._gen: ClientGenerator | None = None
        self._saved: dict[str, Any] = {}
        self._test_yaml = Path("test.yaml")

    def execute(self, on_progress: Callable[[Progress], None] | None = None) -> Outcome:
        test = self.test
        leftovers.reap_store(Path(test["store"]).resolve())
        run = store.create_run(Path(test["store"]).resolve(), test["name"], int(test["seed"]))
        log.info("run folder %s (seed %d)", run.path, test["seed"])
        history = HistoryWriter(run.history)
        # Wall-clock time of the history's t=0, so node events (wall clock) line up with ops;
        # set again when the load starts (the history's t=0 moves there).
        start_time = time.time() - history.now() / 1e9
        saved = {**test, "versions": versions(test), "start_time": round(start_time, 6)}
        if self.replay_of is not None:
            saved["replay_of"] = str(self.replay_of)
        self._saved, self._test_yaml = saved, run.path / "test.yaml"
        self._save_test()
        self.progress.history = history
        failure: str | None = None
        cluster_up = False
        ticker = _Ticker(self.progress, on_progress)
        ticker.start()
        try:
            self.provider = providers.get(test["provider"])(test, run.work_dir)
            self.db = dbs.create(test)
            remotes = self.provider.setup(test["nodes"])
            if registry.moves_clocks(test["nemesis"]["faults"]) and not self.provider.supports_clock:
                reason = self.provider.clock_refusal
                raise HarnessError(f"clock faults refused on the {test['provider']} provider: {reason}")
            self.progress.phase = "startup"
            self.db.setup(self.provider, remotes, test)
            cluster_up = True
            self.db.wait_for_cluster(float(test["startup_timeout"]))
            self._main_phase(history)
        except HarnessError as e:
            failure = str(e)
            log.error("run failed: %s", e)
        except Exception as e:  # a harness bug: still tear down and check
            failure = f"{type(e).__name__}: {e}"
            log.exception("run crashed")
        finally:
            if cluster_up and self.db is not None:
                self._finish(history)
            self._teardown(run)
            history.close()
            ticker.stop()
        self.progress.phase = "checking"
        results: Results | None = None
        report: Path | None = None
        try:
            results = analysis.analyze(run.path)
            report = analysis.render_report(run.path)
        except Exception as e:  # the record stays; `faultline analyze` can retry
            log.exception("checking failed")
            failure = failure or f"checking failed: {type(e).__name__}: {e}"
        finally:
            run.close_log()
        return Outcome(run.path, results, report, failure, self.stop.is_set())

    def _main_phase(self, history: HistoryWriter) -> None:
        test = self.test
        assert self.db is not None and self.provider is not None
        stream = get_workload(test["workload"]).make(int(test["seed"]), test["workload_opts"])
        gen = ClientGenerator(stream, float(test["rate"]))
        self._gen = gen
        self.nemesis = Nemesis(
            self.db, self.provider, test["nodes"], history, float(test["nemesis"]["max_clock_offset"]), test["nemesis"]
        )
        self.progress.nemesis = self.nemesis
        limit = float(test["time_limit"])
        events = self.replay if self.replay is not None else fault_schedule(
            test["nemesis"], int(test["seed"]), float(test["warmup"]), limit
        )
        write_schedule(events, history.path.parent / SCHEDULE_FILE)
        t0 = time.monotonic()
        history.start_ns = int(t0 * 1e9)  # history times count from the start of the load
        self._saved["start_time"] = round(time.time() - (time.monotonic() - t0), 6)
        self._save_test()
        self.progress.started = t0
        self.progress.phase = "running"
        gen.run_until(t0 + limit)
        conc = int(test["concurrency"])
        nodes = test["nodes"]
        workers = [
            threading.Thread(
                target=client_worker,
                args=(i, conc, nodes[i % len(nodes)], self.db, test, gen, history),
                name=f"worker-{i}",
                daemon=True,
            )
            for i in range(conc)
        ]
        nem_stop = threading.Event()
        nem = threading.Thread(
            target=run_schedule, args=(self.nemesis, events, t0, nem_stop), name="nemesis", daemon=True
        )
        for w in workers:
            w.start()
        nem.start()
        # wait out the time limit, or a stop request (Ctrl-C / SIGTERM)
        self.stop.wait(max(0.0, t0 + limit - time.monotonic()))
        gen.stop()
        nem_stop.set()
        timeout = float((test.get("workload_opts") or {}).get("timeout", 2.0)) + 5.0
        for w in workers:
            w.join(timeout)
        nem.join(30.0)
        stuck = [w.name for w in workers if w.is_alive()]
        if stuck:
            log.warning("workers still in a call at the end of the phase: %s", stuck)

    def _save_test(self) -> None:
        """test.yaml: the resolved config and what the run says about itself (written whole,
        then renamed: a reader never sees half of it)."""
        tmp = self._test_yaml.with_name(".test.yaml.tmp")
        tmp.write_text(yaml.safe_dump(self._saved, sort_keys=False))
        tmp.replace(self._test_yaml)

    def _finish(self, history: HistoryWriter) -> None:
        """Heal, check recovery, final reads; best effort after an interruption."""
        assert self.db is not None
        test = self.test
        if self.nemesis is not None:
            self.progress.phase = "healing"
            try:
                self.nemesis.heal_all()
            except Exception:
                log.exception("final heal failed")
        if self.stop.is_set():
            log.info("interrupted: skipping the recovery check and final reads")
            return
        self.progress.phase = "recovery"
        rec = self._recovery(float(test["recovery_timeout"]))
        (history.path.parent / analysis.RECOVERY_FILE).write_text(json.dumps(rec))
        if not test["final_reads"] or self._gen is None:
            return
        if get_workload(test["workload"]).final_reads == "replicas":
            # each replica's own copy: read from its files where the system offers no API,
            # so also after a failed recovery
            self.progress.phase = "final reads"
            self._replica_reads(history)
        elif rec["valid"] is True:
            self.progress.phase = "final reads"
            self._final_reads(history)

    def _recovery(self, limit: float) -> dict[str, Any]:
        """The cluster must elect a leader and acknowledge a write within `limit` seconds."""
        assert self.db is not None
        start = time.monotonic()
        deadline = start + limit
        leader = None
        last_error = "no leader"
        attempt = 0
        while time.monotonic() < deadline and not self.stop.is_set():
            attempt += 1
            if isinstance(self.db, LeaderLookup):
                leader = self.db.leader()
            else:  # a system without a leader lookup: any node must serve, try each in turn
                leader = self.test["nodes"][attempt % len(self.test["nodes"])]
            if leader is None:
                time.sleep(0.2)
                continue
            client = self.db.client(self.test)
            try:
                client.open(leader)
                res = client.invoke({"f": "write", "key": "faultline-recovery", "value": attempt})
            finally:
                client.close()
            if res["type"] == "ok":
                took = time.monotonic() - start
                log.info("recovered in %.1fs: leader %s acknowledged a write", took, leader)
                return {"valid": True, "leader": leader, "elapsed_s": round(took, 3)}
            last_error = f"write via {leader}: {res['type']} {res.get('error', '')}".strip()
            time.sleep(0.2)
        msg = f"cluster did not recover within {limit:.0f}s after healing ({last_error})"
        log.warning(msg)
        return {"valid": False, "leader": leader, "elapsed_s": round(time.monotonic() - start, 3), "message": msg}

    def _final_reads(self, history: HistoryWriter) -> None:
        """Read every key that was written (up to FINAL_READ_KEYS, the newest) and the active
        ones once through every node, as fresh processes, marked `final` in the history (the
        lost-writes checker judges them)."""
        assert self.db is not None
        assert self._gen is not None
        stream = self._gen.stream
        keys = list(dict.fromkeys([*stream.written_keys(FINAL_READ_KEYS), *stream.active_keys()]))
        keyed = stream.keyed
        process = 1_000_000
        for node in self.test["nodes"]:
            client = self.db.client(self.test)
            try:
                client.open(node)
                for key in keys:
                    op: dict[str, Any] = {"f": "read", "value": None, "final": True}
                    if keyed:
                        op["key"] = key
                    history.append({"process": process, "type": "invoke", **op, "node": node})
                    history.append(completion(op, client.invoke(op), process, node))
                    process += 1
            finally:
                client.close()

    def _replica_reads(self, history: HistoryWriter) -> None:
        """One `read-replica` op per node: its own copy of the log, as the DB reads it (this
        may stop the cluster: it is the last thing a run does with it)."""
        assert self.db is not None
        if not isinstance(self.db, ReplicaCopies):  # refused at validation; a replayed old run
            log.warning("db %s cannot read each replica's copy; the log checker will say unknown", self.db.name)
            return
        nodes = list(self.test["nodes"])
        procs = {node: 1_000_000 + i for i, node in enumerate(nodes)}
        for node in nodes:
            history.append({"process": procs[node], "type": "invoke", "f": "read-replica", "value": None, "node": node})
        error = "not read"
        try:
            copies = self.db.read_replicas(history.path.parent / "work" / "replicas")
        except HarnessError as e:
            log.warning("reading the replicas failed: %s", e)
            copies, error = {}, str(e)
        for node in nodes:
            copy = copies.get(node)
            done: dict[str, Any] = {"process": procs[node], "f": "read-replica", "node": node}
            if copy is None:
                history.append({**done, "type": "fail", "value": None, "error": error})
                continue
            extra = {k: v for k, v in copy.items() if k != "msgs"}
            history.append({**done, "type": "ok", "value": [list(m) for m in copy["msgs"]], **extra})

    def _teardown(self, run: store.RunDir) -> None:
        self.progress.phase = "teardown"
        if self.db is not None:
            # stop first: a clean shutdown flushes the nodes' buffered events
            try:
                self.db.teardown()
            except Exception:
                log.exception("db teardown failed")
            for node in self.test["nodes"]:
                try:
                    self.db.collect(node, run.nodes_dir / node)
                except Exception as e:
                    log.warning("%s: collect failed: %s", node, e)
        clocks = self.provider
        if isinstance(clocks, ClockOperations) and getattr(clocks, "supports_clock", False):
            # each node's clock log and what its agent applied: the report places the node's
            # events (stamped with its own clock) on true time with them
            for node in self.test["nodes"]:
                try:
                    clocks.collect_clock(node, run.nodes_dir / node)
                except Exception as e:
                    log.warning("%s: collecting its clock log failed: %s", node, e)
        if self.provider is not None:
            try:
                self.provider.teardown()
            except Exception:
                log.exception("provider teardown failed")
        # logs and events are collected; the nodes' data dirs and proxies' state are scratch
        # (removed after the provider's teardown, which unmounts data dirs on faultfs)
        shutil.rmtree(run.work_dir, ignore_errors=True)


class _Ticker:
    """Calls `on_progress` about once a second from its own thread."""

    def __init__(self, progress: Progress, fn: Callable[[Progress], None] | None) -> None:
        self.progress = progress
        self.fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def start(self) -> None:
        if self.fn is not None:
            self._thread.start()

    def _loop(self) -> None:
        assert self.fn is not None
        while not self._stop.wait(1.0):
            try:
                self.fn(self.progress)
            except Exception:
                log.exception("progress line failed")
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
