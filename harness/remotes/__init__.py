"""Remotes: run commands on one host (local subprocess, network namespace, SSH)."""
