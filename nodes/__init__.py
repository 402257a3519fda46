"""raftkv: the Raft key-value store faultline tests first (`nodes.raft` is its consensus core)."""
