"""HTML reports of stored runs and of the store."""

from __future__ import annotations

from pathlib import Path


def render_run(run_dir: Path) -> Path:
    """Write run_dir/report.html (self-contained) and return its path."""
    from reports.render import render_run as _render_run  # matplotlib loads only when used

    return _render_run(run_dir)


def render_index(store_dir: Path) -> Path:
    """Write store_dir/index.html listing every run, newest first, and return its path."""
    from reports.index import render_index as _render_index

    return _render_index(store_dir)


__all__ = ["render_index", "render_run"]
