"""The nemesis: makes faults real and records them in the history."""
