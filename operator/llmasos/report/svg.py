"""Inline SVG charts for the report: no JavaScript, no fonts or images to fetch, so the page renders offline and
prints as it looks. Horizontal bars handle negative values (a saving can be negative) with a zero line.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#2e7d32", "#c62828", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def fmt(value: float) -> str:
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.2f} M"
    if a >= 1e3:
        return f"{value / 1e3:.2f} k"
    if a >= 10 or a == 0:
        return f"{value:.1f}"
    if a >= 0.01:
        return f"{value:.2f}"
    return f"{value:.3g}"


def mass(grams: float) -> str:
    """Grams in the unit a reader expects: g, kg or t."""
    a = abs(grams)
    if a >= 1e6:
        return f"{grams / 1e6:,.3f} t"
    if a >= 1e3:
        return f"{grams / 1e3:,.2f} kg"
    return f"{grams:,.1f} g"


def hbars(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], unit: str,
          width: int = 530) -> str:
    """One row per label, one bar per series in it; a legend when there are several series."""
    label_w, bar_h, gap = 170, 14, 10
    row_h = bar_h * len(series) + gap
    top = 28 + (18 if len(series) > 1 else 0)
    height = top + row_h * max(len(labels), 1) + 24
    values = [v for _, vals in series for v in vals] or [0.0]
    lo, hi = min(0.0, min(values)), max(0.0, max(values))
    span = (hi - lo) or 1.0
    plot_w = width - label_w - 90

    def x(v: float) -> float:
        return label_w + (v - lo) / span * plot_w

    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" {FONT}><title>{escape(title)}</title>',
             f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)} ({escape(unit)})</text>']
    if len(series) > 1:
        for k, (name, _) in enumerate(series):
            parts.append(f'<rect x="{k * 150}" y="26" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                         f'<text x="{k * 150 + 14}" y="35">{escape(name)}</text>')
    for i, label in enumerate(labels):
        y0 = top + i * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + row_h / 2}" text-anchor="end">{escape(label[:28])}</text>')
        for k, (_, vals) in enumerate(series):
            v = vals[i]
            x0, x1 = sorted((x(0.0), x(v)))
            y = y0 + k * bar_h
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" height="{bar_h - 2}" '
                         f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(label)}: {fmt(v)}</title></rect>'
                         f'<text x="{x1 + 4:.1f}" y="{y + bar_h - 4}">{fmt(v)}</text>')
    parts.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top - 4}" y2="{height - 20}" stroke="#555"/>')
    parts.append("</svg>")
    return "".join(parts)


def columns(title: str, labels: Sequence[str], values: Sequence[float], unit: str, width: int = 530) -> str:
    """Vertical columns in label order (days): the shape of emissions over time."""
    height, top, bottom, left = 240, 28, 40, 50
    plot_h, plot_w = height - top - bottom, width - left - 10
    hi = max([*values, 0.0]) or 1.0
    step = plot_w / max(len(values), 1)
    parts = [f'<svg role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" {FONT}><title>{escape(title)}</title>',
             f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)} ({escape(unit)})</text>',
             f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{fmt(hi)}</text>',
             f'<line x1="{left}" x2="{width - 10}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#555"/>']
    every = max(1, len(labels) // 8)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        h = max(v, 0.0) / hi * plot_h
        x = left + i * step
        parts.append(f'<rect x="{x + step * 0.1:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.8:.1f}" '
                     f'height="{h:.1f}" fill="{PALETTE[2]}"><title>{escape(label)}: {fmt(v)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                         f'{escape(label[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)
