"""Tiny helpers for writing escaped SVG by hand (no dependency, no DOM library)."""

from __future__ import annotations

from html import escape


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def rect(x: float, y: float, w: float, h: float, cls: str, title: str | None = None, extra: str = "") -> str:
    inner = f"<title>{esc(title)}</title>" if title else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.5):.1f}" height="{h:.1f}" class="{cls}"{extra}>'
        f"{inner}</rect>"
    )


def text(x: float, y: float, body: str, cls: str = "", anchor: str = "start", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{c}{extra}>{esc(body)}</text>'


def line(x1: float, y1: float, x2: float, y2: float, cls: str, title: str | None = None, extra: str = "") -> str:
    inner = f"<title>{esc(title)}</title>" if title else ""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="{cls}"{extra}>{inner}</line>'


def clip(body: str, width_px: float, char_px: float = 6.2) -> str:
    """Truncate a label to roughly fit `width_px` of 11px monospace-ish text."""
    n = int(width_px / char_px)
    if n <= 1:
        return ""
    return body if len(body) <= n else body[: n - 1] + "…"
