"""Modules loaded into node processes that run under libfaketime (see sitecustomize.py)."""
