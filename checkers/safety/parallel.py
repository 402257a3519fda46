"""Reading the node files of a run in worker processes, one task per node.

Each worker returns a NodeFile: numpy columns and the few events the cluster-wide checks cite,
never the millions of parsed events; multiprocessing pickles it between our own processes (the
workers read only the run's files). Workers are forked: spawn and forkserver would re-import the
caller's __main__ (breaking scripts without a main guard) and pay numpy's import per worker; a
forked worker only reads its file and builds its result (it takes no lock and does not log, so
a controller's other threads cannot leave it waiting on one).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from checkers.safety.nodefile import NodeFile, scan_node_file

log = logging.getLogger(__name__)

#: Below this many bytes of events in all, the default is to read them in this process: a
#: worker costs a fork and the transfer of its result, more than it saves on a small run.
SERIAL_BELOW_BYTES = 32 << 20


def default_workers(n_files: int) -> int:
    """One process per core, at most one per node file. (More processes than cores measured
    slower on the 5-node benchmark: their working sets thrash the shared caches.)"""
    return max(1, min(n_files, os.cpu_count() or 1))


def read_node_files(files: Mapping[str, Path], workers: int | None = None,
                    altered: Mapping[str, Sequence[float]] | None = None) -> list[NodeFile]:
    """scan_node_file for every (node, path), in node order; raises the first node's error.
    workers=None: default_workers, or 1 for a run under SERIAL_BELOW_BYTES. `altered`: per
    node, when the nemesis altered its disk (scan.scan_node)."""
    items = sorted(files.items())
    alt = {node: tuple((altered or {}).get(node, ())) for node, _path in items}
    if workers is None:
        small = sum(_size(path) for _node, path in items) < SERIAL_BELOW_BYTES
        n = 1 if small else default_workers(len(items))
    else:
        n = max(1, min(workers, len(items)))
    if n <= 1:
        return [scan_node_file(node, path, alt[node]) for node, path in items]
    ctx = multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
            futures = [pool.submit(scan_node_file, node, path, alt[node]) for node, path in items]
            return [f.result() for f in futures]
    except BrokenProcessPool as e:  # a worker died (killed, out of memory): one more try here
        log.warning("raft-safety: worker processes failed (%s); reading the node files in "
                    "this process", e)
        return [scan_node_file(node, path, alt[node]) for node, path in items]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # scan_node_file names the file it cannot read
