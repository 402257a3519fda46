"""The nemesis: makes scheduled faults real through the provider and the DB, records each one
in the history as `process: "nemesis"` ops, and heals everything at the end.

What each fault does is its family's module (harness.nemesis.faults, found through
harness.nemesis.registry); this module runs them, several at once when the schedule overlaps
them (a `mix`). A fault that fails to apply (no leader to transfer from, say) is recorded with
its error and the run goes on: it is the system's behaviour under test, not the harness's.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.nemesis import registry, schedule
from harness.nemesis.schedule import FaultEvent
from harness.nemesis.state import ActiveFault, NemesisState
from harness.protocols import DB, HarnessError, Provider
from harness.run.history import HistoryWriter

log = logging.getLogger(__name__)


class Nemesis:
    def __init__(
        self, db: DB, provider: Provider, nodes: Sequence[str], history: HistoryWriter, max_clock_offset: float = 10.0,
        opts: Mapping[str, Any] | None = None,
    ) -> None:
        self.state = NemesisState(db, provider, list(nodes), max_clock_offset, opts=dict(opts or {}))
        self.state.step = self.step
        self.history = history
        #: Faults in effect, in the order they started.
        self.active: list[ActiveFault] = []
        self.count = 0
        self._lock = threading.Lock()

    # ---- recording ----

    def _record(self, f: str, value: Any, error: str | None = None) -> None:
        op: dict[str, Any] = {"process": "nemesis", "type": "info", "f": f, "value": value}
        if error:
            op["error"] = error
        self.history.append(op)

    def describe_active(self) -> str:
        active = list(self.active)
        return ", ".join(a.event.describe() for a in active) if active else "none"

    # ---- start / stop ----

    def start(self, ev: FaultEvent) -> ActiveFault:
        with self._lock:
            rng = random.Random(ev.seed)
            active = ActiveFault(ev)
            self.active.append(active)
            self.count += 1
            try:
                value = registry.get(ev.fault).start(self.state, active, rng)
                self._record(f"start-{ev.fault}", value)
                log.info("nemesis: start %s: %s", ev.describe(), value)
            except (HarnessError, OSError) as e:
                self._record(f"start-{ev.fault}", {"kind": ev.kind}, error=str(e))
                log.warning("nemesis: %s failed: %s", ev.describe(), e)
            return active

    def during(self, active: ActiveFault, stop: threading.Event) -> None:
        """What the fault does while it lasts (a strobing clock); returns at once for most."""
        fn = registry.get(active.event.fault).during
        if fn is not None:
            fn(self.state, active, stop)

    def step(self, f: str, fn: Callable[[], dict[str, Any]]) -> None:
        """One step of a fault that plays several (NemesisState.step): run it under the lock
        (other lanes change the same network and clocks) and record it as nemesis op `f`."""
        with self._lock:
            try:
                value = fn()
                self._record(f, value)
                log.info("nemesis: %s: %s", f, value)
            except (HarnessError, OSError) as e:
                self._record(f, {}, error=str(e))
                log.warning("nemesis: %s failed: %s", f, e)

    def stop(self, active: ActiveFault | None = None) -> None:
        """Undo one active fault (default: every active one, the newest first)."""
        if active is None:
            for a in reversed(list(self.active)):
                self.stop(a)
            return
        with self._lock:
            if active not in self.active:
                return
            ev = active.event
            try:
                value = registry.get(ev.fault).stop(self.state, active)
                if value is not None:
                    self._record(f"stop-{ev.fault}", value)
                    log.info("nemesis: stop %s: %s", ev.describe(), value)
            except (HarnessError, OSError) as e:
                self._record(f"stop-{ev.fault}", {"kind": ev.kind}, error=str(e))
                log.warning("nemesis: healing %s failed: %s", ev.describe(), e)
            finally:
                self.active.remove(active)

    # ---- final heal ----

    def heal_all(self) -> None:
        """Undo every fault: stop the active ones, then let every family heal what it still
        has in effect (network, pauses, clocks, crashes, membership, in that order). Recorded
        as one `heal` op."""
        self.stop()
        errors: list[str] = []
        done: dict[str, Any] = {}
        with self._lock:
            for fault in sorted(registry.families(), key=lambda f: f.heal_order):
                if fault.heal is not None:
                    fault.heal(self.state, done, errors)
        self._record("heal", done, error="; ".join(errors) or None)
        log.info("nemesis: healed everything: %s%s", done, f" (errors: {errors})" if errors else "")


def run_schedule(nemesis: Nemesis, events: Sequence[FaultEvent], t0: float, stop: threading.Event) -> None:
    """Play `events` (times relative to monotonic `t0`) until done or `stop` is set. Events
    that overlap in time (a `mix`) play in one thread per fault family."""
    lanes = schedule.lanes(events)
    if len(lanes) <= 1:
        _play_lane(nemesis, lanes[0] if lanes else [], t0, stop)
        return
    threads = [
        threading.Thread(target=_play_lane, args=(nemesis, lane, t0, stop), name=f"nemesis-{lane[0].fault}", daemon=True)
        for lane in lanes
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _play_lane(nemesis: Nemesis, events: Sequence[FaultEvent], t0: float, stop: threading.Event) -> None:
    for ev in events:
        if stop.wait(max(0.0, t0 + ev.at - time.monotonic())):
            return
        active = nemesis.start(ev)
        nemesis.during(active, stop)
        if registry.get(ev.fault).instantaneous:
            nemesis.stop(active)
            continue
        remaining = t0 + ev.at + ev.duration - time.monotonic()
        stop.wait(max(0.0, remaining))
        nemesis.stop(active)
        if stop.is_set():
            return
