"""The Jinja2 environment and the inline static sources (CSS, JS) shared by all pages."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).resolve().parent


def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def static(name: str) -> str:
    """A static source, inlined into the page so it opens from file:// with nothing else."""
    return (HERE / "static" / name).read_text(encoding="utf-8")
