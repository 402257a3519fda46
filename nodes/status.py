"""The admin ``/status`` document of a node (docs/raftkv-protocol.md)."""

from __future__ import annotations

import time
from typing import Any

from nodes.events import node_name
from nodes.node import ROLE_NAMES, Node


def status_document(node: Node) -> dict[str, Any]:
    """The admin /status document (run on the loop thread via call())."""
    st = node.rn.status()
    progress = {
        node_name(pid): {"match": p.match, "next": p.next, "state": p.state.name.lower()}
        for pid, p in st.progress.items()
    }
    return {
        "id": node.cfg.name,
        "role": ROLE_NAMES[st.soft_state.raft_state],
        "term": st.hard_state.term,
        "lead": node_name(st.soft_state.lead) if st.soft_state.lead else None,
        "commit": st.hard_state.commit,
        "applied": node.applied,
        "voters": [node_name(v) for v in sorted(node.conf_state.voters)],
        "learners": [node_name(v) for v in sorted(node.conf_state.learners)],
        "progress": progress,
        "quiesced": node.quiesced,
        "bugs": sorted(node.cfg.bugs.names),
        "boot": node.boot,
        "snapshot_index": node.snapshot_index,
        "last_index": node.storage.last_index(),
        "fsyncs": node.wal.fsyncs,
        "read_mode": node.cfg.read_mode,
        # the node's own clocks, as a clock fault left them: Raft ticks so far and the wall clock
        "ticks": node.rn.raft.ticks,
        "wall_clock": time.time(),
    }

