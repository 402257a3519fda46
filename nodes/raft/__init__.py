"""A pure, deterministic Raft consensus core in the style of etcd's raft library."""
