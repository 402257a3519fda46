"""Workloads: what a test does and which model judges it."""
