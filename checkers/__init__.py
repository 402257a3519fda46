"""Pure checkers over recorded data: linearizability, Raft safety, stats."""
