"""The nemesis: makes scheduled faults real through the provider and the DB, records each one
in the history as `process: "nemesis"` ops, and heals everything at the end.

One fault is active at a time. A fault that fails to apply (no leader to transfer from, say)
is recorded with its error and the run goes on: it is the system's behaviour under test, not
the harness's.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from harness.nemesis import figure8
from harness.net import grudges
from harness.net.msgfilter import hold
from harness.net.proxy import ProxyHub
from harness.protocols import DB, HarnessError, Provider
from harness.run.generator import FaultEvent
from harness.run.history import HistoryWriter

log = logging.getLogger(__name__)

STROBE_PERIOD = 0.25  # seconds between clock flips while strobing
STALE_STEP_TIMEOUT = 5.0  # bound on each wait of the stale-transfer scenario
STALE_POLL = 0.1


class Nemesis:
    def __init__(
        self, db: DB, provider: Provider, nodes: Sequence[str], history: HistoryWriter, max_clock_offset: float = 10.0
    ) -> None:
        self.db = db
        self.provider = provider
        self.nodes = list(nodes)
        self.history = history
        self.max_clock_offset = max_clock_offset
        self.active: FaultEvent | None = None
        self._undo: dict[str, Any] = {}
        self.killed: set[str] = set()
        self.paused: set[str] = set()
        self.clocked: set[str] = set()
        self.removed: set[str] = set()
        self.partitioned = False
        self.count = 0
        self._lock = threading.Lock()

    # ---- recording ----

    def _record(self, f: str, value: Any, error: str | None = None) -> None:
        op: dict[str, Any] = {"process": "nemesis", "type": "info", "f": f, "value": value}
        if error:
            op["error"] = error
        self.history.append(op)

    def describe_active(self) -> str:
        ev = self.active
        return ev.describe() if ev is not None else "none"

    # ---- targets ----

    def _members(self) -> list[str]:
        return [n for n in self.nodes if n not in self.removed]

    def _leader_or(self, rng: random.Random) -> str:
        lead = self.db.leader()
        return lead if lead is not None else rng.choice(self._members())

    def _targets(self, kind: str, rng: random.Random) -> list[str]:
        members = self._members()
        if kind == "leader":
            return [self._leader_or(rng)]
        if kind == "one":
            return [rng.choice(members)]
        if kind == "minority":
            return sorted(rng.sample(members, max(1, (len(members) - 1) // 2)))
        if kind == "all":
            return list(members)
        raise HarnessError(f"nemesis: unknown target kind {kind!r}")

    # ---- start / stop ----

    def start(self, ev: FaultEvent) -> None:
        with self._lock:
            rng = random.Random(ev.seed)
            self.active = ev
            self.count += 1
            try:
                value = getattr(self, f"_start_{ev.fault.replace('-', '_')}")(ev, rng)
                self._record(f"start-{ev.fault}", value)
                log.info("nemesis: start %s: %s", ev.describe(), value)
            except (HarnessError, OSError) as e:
                self._record(f"start-{ev.fault}", {"kind": ev.kind}, error=str(e))
                log.warning("nemesis: %s failed: %s", ev.describe(), e)

    def stop(self) -> None:
        with self._lock:
            ev = self.active
            if ev is None:
                return
            try:
                value = getattr(self, f"_stop_{ev.fault.replace('-', '_')}")(ev)
                if value is not None:
                    self._record(f"stop-{ev.fault}", value)
                    log.info("nemesis: stop %s: %s", ev.describe(), value)
            except (HarnessError, OSError) as e:
                self._record(f"stop-{ev.fault}", {"kind": ev.kind}, error=str(e))
                log.warning("nemesis: healing %s failed: %s", ev.describe(), e)
            finally:
                self.active = None
                self._undo = {}

    # partition

    def _start_partition(self, ev: FaultEvent, rng: random.Random) -> dict[str, Any]:
        members = self._members()
        shape: Any
        if ev.kind == "halves":
            grudge, shape = grudges.halves(members, rng)
        elif ev.kind in ("one", "leader"):
            grudge, shape = grudges.isolate(members, self._targets(ev.kind, rng)[0])
        elif ev.kind == "ring":
            grudge, shape = grudges.majorities_ring(members, rng)
        elif ev.kind == "bridge":
            grudge, shape = grudges.bridge(members, rng)
        else:
            raise HarnessError(f"nemesis: unknown partition kind {ev.kind!r}")
        self.provider.partition(grudge)
        self.partitioned = True
        key = "views" if ev.kind == "ring" else "groups"
        return {"kind": ev.kind, key: shape}

    def _stop_partition(self, ev: FaultEvent) -> dict[str, Any]:
        self.provider.heal()
        self.partitioned = False
        return {"kind": ev.kind, "healed": True}

    # kill / restart

    def _start_kill(self, ev: FaultEvent, rng: random.Random) -> dict[str, Any]:
        targets = self._targets(ev.kind, rng)
        for n in targets:
            self.db.kill(n)
            self.killed.add(n)
        self._undo["nodes"] = targets
        return {"kind": ev.kind, "nodes": targets}

    def _stop_kill(self, ev: FaultEvent) -> dict[str, Any]:
        started = []
        for n in self._undo.get("nodes", []):
            if n in self.removed:
                continue
            self.db.start(n)
            self.killed.discard(n)
            started.append(n)
        return {"kind": ev.kind, "restarted": started}

    # pause / resume

    def _start_pause(self, ev: FaultEvent, rng: random.Random) -> dict[str, Any]:
        targets = self._targets(ev.kind, rng)
        for n in targets:
            self.db.pause(n)
            self.paused.add(n)
        self._undo["nodes"] = targets
        return {"kind": ev.kind, "nodes": targets}

    def _stop_pause(self, ev: FaultEvent) -> dict[str, Any]:
        resumed = []
        for n in self._undo.get("nodes", []):
            self.db.resume(n)
            self.paused.discard(n)
            resumed.append(n)
        return {"kind": ev.kind, "resumed": resumed}

    # clock

    def _start_clock(self, ev: FaultEvent, rng: random.Random) -> dict[str, Any]:
        if not self.provider.supports_clock:
            raise HarnessError(f"clock faults are not supported by the {self.provider.name} provider")
        node = rng.choice(self._members())
        self.clocked.add(node)
        self._undo["nodes"] = [node]
        mag = rng.uniform(0.5, max(0.5, self.max_clock_offset))
        if ev.kind == "jump":
            offset = mag if rng.random() < 0.5 else -mag
            self.provider.set_clock(node, offset)
            return {"kind": "jump", "nodes": [node], "offset_s": round(offset, 3)}
        if ev.kind == "rate":
            rate = rng.choice([0.5, 0.8, 1.5, 2.0])
            self.provider.set_clock(node, 0.0, rate)
            return {"kind": "rate", "nodes": [node], "rate": rate}
        if ev.kind == "strobe":
            # recorded now; the flipping itself runs in strobe() after the start is recorded
            self._undo["strobe"] = (node, mag, time.monotonic() + ev.duration)
            return {"kind": "strobe", "nodes": [node], "offset_s": round(mag, 3), "period_s": STROBE_PERIOD}
        raise HarnessError(f"nemesis: unknown clock kind {ev.kind!r}")

    def strobe(self, stop: threading.Event) -> None:
        """Flip the strobed node's clock between now and now + offset until the fault's time is
        up or `stop` is set (called by the schedule right after start)."""
        strobe = self._undo.get("strobe")
        if strobe is None:
            return
        node, mag, deadline = strobe
        flips = 0
        while time.monotonic() < deadline and flips < 100_000:
            try:
                self.provider.set_clock(node, mag if flips % 2 == 0 else 0.0)
            except (HarnessError, OSError) as e:
                log.warning("nemesis: strobe on %s failed: %s", node, e)
                return
            flips += 1
            if stop.wait(STROBE_PERIOD):
                return

    def _stop_clock(self, ev: FaultEvent) -> dict[str, Any]:
        nodes = self._undo.get("nodes", [])
        for n in nodes:
            self.provider.set_clock(n, 0.0, 1.0)
            self.clocked.discard(n)
        return {"kind": ev.kind, "reset": nodes}

    # leader transfer (instantaneous)

    def _start_transfer(self, ev: FaultEvent, rng: random.Random) -> dict[str, Any]:
        lead = self.db.leader()
        if lead is None:
            raise HarnessError("no leader to transfer from")
        candidates = [n for n in self._members() if n != lead and n not in self.killed and n not in self.paused]
        if not candidates:
            raise HarnessError("no live follower to transfer to")
        to = rng.choice(candidates)
        self.db.transfer_leader(to)
        return {"from": lead, "to": to}

    def _stop_transfer(self, ev: FaultEvent) -> None:
        return None

    # membership: remove a follower, add it back wiped

    def _start_membership(self, ev: FaultEvent, rng: random.Random) -> dict[str, Any]:
        lead = self.db.leader()
        candidates = [n for n in self._members() if n != lead]
        if len(self._members()) < 3 or not candidates:
            raise HarnessError("membership change needs 3 members and a follower")
        node = rng.choice(candidates)
        self.db.remove_member(node)
        self.removed.add(node)
        self._undo["nodes"] = [node]
        return {"op": "remove", "node": node}

    def _stop_membership(self, ev: FaultEvent) -> dict[str, Any]:
        added = []
        for n in self._undo.get("nodes", []):
            self.db.add_member(n)
            self.removed.discard(n)
            self.killed.discard(n)
            added.append(n)
        return {"op": "add", "nodes": added, "wiped": True}

    # stale transfer: a TimeoutNow held in the network across its target's removal

    def _hub(self) -> ProxyHub:
        hub = getattr(self.provider, "hub", None)
        if not isinstance(hub, ProxyHub):
            raise HarnessError(f"message faults need the local provider's proxies, not {self.provider.name}")
        return hub

    def _poll(self, cond: Any) -> bool:
        """Poll `cond()` every STALE_POLL seconds for at most STALE_STEP_TIMEOUT seconds."""
        deadline = time.monotonic() + STALE_STEP_TIMEOUT
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(STALE_POLL)
        return bool(cond())

    def _start_stale_transfer(self, ev: FaultEvent, rng: random.Random) -> dict[str, Any]:
        """Hold TimeoutNow on the link leader -> target, ask for the transfer, wait until the
        leader abandons it (it refuses the removal while the transfer is in progress), remove
        the target, restart it (raftkv kills removed members) and release the TimeoutNow: a
        correct node ignores it unless it still counts itself a voter."""
        hub = self._hub()
        lead = self.db.leader()
        if lead is None:
            raise HarnessError("no leader to transfer from")
        candidates = [n for n in self._members() if n != lead and n not in self.killed and n not in self.paused]
        if len(self._members()) < 3 or not candidates:
            raise HarnessError("stale-transfer needs 3 members and a live follower")
        to = rng.choice(candidates)
        value: dict[str, Any] = {"from": lead, "to": to}
        hub.set_rule(lead, to, hold("TIMEOUT_NOW"))
        try:
            try:
                self.db.transfer_leader(to)
            except HarnessError as e:  # expected: the transfer cannot finish while TimeoutNow is held
                value["transfer"] = str(e)
            value["held"] = self._poll(lambda: hub.held_frames(lead, to) > 0) and hub.held_frames(lead, to)
            if not value["held"]:
                raise HarnessError(f"{lead} sent no TimeoutNow to {to} within {STALE_STEP_TIMEOUT} s")
            errors: list[str] = []

            def remove() -> bool:
                try:
                    self.db.remove_member(to)
                    return True
                except HarnessError as e:  # refused while the transfer is still in progress
                    errors.append(str(e))
                    return False

            if not self._poll(remove):
                raise HarnessError(f"removal of {to} refused for {STALE_STEP_TIMEOUT} s: {errors[-1]}")
            self.removed.add(to)
            self._undo["nodes"] = [to]
            self.db.start(to)  # the removed member must be alive to receive the stale TimeoutNow
            value["removed"] = True
        finally:
            # released at once: every entry appended from here on makes the others' logs longer
            # than the removed node's, and its votes are then rightly refused
            value["released"] = hub.held_frames(lead, to)
            hub.set_rule(lead, to, None)
        # recorded for the reader: a target that never learnt its removal may campaign even when
        # correct (it still counts itself a voter); the checker judges by the node's own view
        status = getattr(self.db, "status", None)
        if callable(status):
            value["knows_removed"] = self._poll(lambda: to not in ((status(to) or {}).get("voters") or [to]))
        return value

    def _stop_stale_transfer(self, ev: FaultEvent) -> dict[str, Any]:
        """Add the removed node back, waiting out the elections its campaign may have caused."""
        errors: list[str] = []

        def add_back() -> bool:
            try:
                self._stop_membership(ev)
                return True
            except HarnessError as e:
                errors.append(str(e))
                return False

        if not self._poll(add_back):
            raise HarnessError(f"adding back {self._undo.get('nodes')} failed for {STALE_STEP_TIMEOUT} s: {errors[-1]}")
        return {"op": "add", "nodes": list(self._undo.get("nodes", [])), "wiped": True}

    # figure eight: an old-term entry counted committed, then overwritten (harness/nemesis/figure8.py)

    def _start_figure_eight(self, ev: FaultEvent, rng: random.Random) -> dict[str, Any]:
        hub = self._hub()
        status = getattr(self.db, "status", None)
        if not callable(status):
            raise HarnessError(f"figure-eight needs a DB with an admin status, not {type(self.db).__name__}")
        members = [n for n in self._members() if n not in self.killed and n not in self.paused]
        rules: list[tuple[str, str]] = []
        self._undo["rules"] = rules
        self.partitioned = True
        return figure8.play(status, self.db.leader, members, self.provider, hub, rules)

    def _stop_figure_eight(self, ev: FaultEvent) -> dict[str, Any]:
        hub = self._hub()
        for src, dst in self._undo.get("rules", []):
            hub.set_rule(src, dst, None)
        self.provider.heal()
        self.partitioned = False
        return {"healed": True}

    # ---- final heal ----

    def heal_all(self) -> None:
        """Undo every fault: stop the active one, heal the network, resume, restart, reset
        clocks, add removed members back. Recorded as one `heal` op."""
        self.stop()
        errors: list[str] = []
        done: dict[str, Any] = {}

        def attempt(what: str, fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except (HarnessError, OSError) as e:
                errors.append(f"{what}: {e}")

        with self._lock:
            attempt("heal network", self.provider.heal)
            self.partitioned = False
            for n in sorted(self.paused):
                attempt(f"resume {n}", self.db.resume, n)
            done["resumed"] = sorted(self.paused)
            self.paused.clear()
            if self.provider.supports_clock:
                for n in sorted(self.clocked):
                    attempt(f"reset clock {n}", self.provider.set_clock, n, 0.0, 1.0)
            done["clocks_reset"] = sorted(self.clocked)
            self.clocked.clear()
            for n in sorted(self.killed - self.removed):
                attempt(f"restart {n}", self.db.start, n)
            done["restarted"] = sorted(self.killed - self.removed)
            self.killed.clear()
            for n in sorted(self.removed):
                attempt(f"add back {n}", self.db.add_member, n)
            done["added"] = sorted(self.removed)
            self.removed.clear()
        self._record("heal", done, error="; ".join(errors) or None)
        log.info("nemesis: healed everything: %s%s", done, f" (errors: {errors})" if errors else "")


def run_schedule(nemesis: Nemesis, events: Sequence[FaultEvent], t0: float, stop: threading.Event) -> None:
    """Play `events` (times relative to monotonic `t0`) until done or `stop` is set."""
    for ev in events:
        if stop.wait(max(0.0, t0 + ev.at - time.monotonic())):
            return
        nemesis.start(ev)
        nemesis.strobe(stop)
        if ev.fault in ("transfer",):
            nemesis.stop()
            continue
        remaining = t0 + ev.at + ev.duration - time.monotonic()
        stop.wait(max(0.0, remaining))
        nemesis.stop()
        if stop.is_set():
            return
