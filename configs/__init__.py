"""Shipped YAML test configurations (data only)."""
