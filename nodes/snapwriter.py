"""Writes the node's automatic snapshot files off the node loop.

A snapshot file costs a write, two fsyncs and a rename (nodes/snap.py): 5-20 ms on the
shared benchmark machine, which the node loop used to spend stalled every `--snapshot-count`
entries, a visible share of the p99 latency. The loop now serialises the state machine and
compacts its in-memory log at once, hands the file here, and records the snapshot in the WAL
(and releases WAL segments) only when told the file is durable: until then recovery simply
starts from the previous snapshot file plus the WAL, which still holds every entry.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from nodes import snap
from nodes.fdwait import FdEvent, join_within

log = logging.getLogger(__name__)

# (index, term, durable?) -- called on the writer thread
Done = Callable[[int, int, bool], None]


class SnapshotWriter:
    def __init__(self, snap_dir: Path, on_done: Done, sync_data: bool = True) -> None:
        self.snap_dir = snap_dir
        self.sync_data = sync_data  # False only for the seeded bug snapshot-rename-before-fsync
        self.on_done = on_done
        self.busy = False  # a file is being written (set here, cleared by the node loop)
        self.pending_index = 0  # index of the file being written
        self._q: queue.Queue[snap.SnapshotFile | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._finished = FdEvent()

    def submit(self, sf: snap.SnapshotFile) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="snap-writer", daemon=True)
            self._thread.start()
        self.busy = True
        self.pending_index = sf.index
        self._q.put(sf)

    def _run(self) -> None:
        try:
            self._write_all()
        finally:
            self._finished.set()

    def _write_all(self) -> None:
        while True:
            sf = self._q.get()
            if sf is None:
                return
            try:
                snap.save(self.snap_dir, sf, sync_data=self.sync_data)
            except OSError as e:
                log.error("snapshot %d: writing %s failed: %s", sf.index, self.snap_dir, e)
                self.on_done(sf.index, sf.term, False)
            else:
                self.on_done(sf.index, sf.term, True)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the file in hand (a clean shutdown keeps it), then end the thread."""
        if self._thread is not None:
            self._q.put(None)
            join_within(self._thread, self._finished, timeout)
