"""Campaigns of many runs: the nightly soak and the bug zoo, with their summaries."""
