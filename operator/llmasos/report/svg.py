"""Every chart LLMasOS draws, as SVG: the sustainability report's bars and columns and `llmasos simulate`'s intensity
timeline. Pure functions from data to SVG text, with no plotting dependency and no JavaScript, fonts or images to
fetch: a page renders offline and prints as it looks, the output is deterministic, and a test can parse it as XML.

Each chart is one `<svg>` element with the SVG namespace, so it works inline in HTML and as a file of its own. Drawn
data carry `data-series` (and `data-lane` on a timeline's lanes) and a `<title>` tooltip, so what is drawn can be
read back without looking at pixels. Horizontal bars handle negative values (a saving can be negative) with a zero line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from llmasos.api.units import mass_text, moment_text

PALETTE = ("#2e7d32", "#c62828", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'
XMLNS = 'xmlns="http://www.w3.org/2000/svg"'

Span = tuple[datetime, datetime]


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
    """Grams in the unit a reader expects: g, kg or t (the project's one convention, `api.units`)."""
    return mass_text(grams)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2 or 5 times a power of ten apart) from `lo` to `hi`, both included if round."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10)), key=lambda s: abs(math.log(s / raw)))
    first = math.ceil(lo / step - 1e-9)
    return [round(step * i, 10) for i in range(first, math.floor(hi / step + 1e-9) + 1)]


def _open(title: str, unit: str, width: int, height: int) -> list[str]:
    return [f'<svg {XMLNS} role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT}>'
            f"<title>{escape(title)}</title>",
            f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)} ({escape(unit)})</text>']


def _legend(names: Sequence[str], colours: Sequence[str], x0: float, y: int) -> str:
    return '<g class="legend">' + "".join(
        f'<rect x="{x0 + k * 150:g}" y="{y}" width="10" height="10" fill="{c}"/>'
        f'<text x="{x0 + k * 150 + 14:g}" y="{y + 9}">{escape(n)}</text>'
        for k, (n, c) in enumerate(zip(names, colours, strict=True))) + "</g>"


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

    parts = _open(title, unit, width, height)
    if len(series) > 1:
        parts.append(_legend([n for n, _ in series], [PALETTE[k % len(PALETTE)] for k in range(len(series))], 0, 26))
    for i, label in enumerate(labels):
        y0 = top + i * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + row_h / 2}" text-anchor="end">{escape(label[:28])}</text>')
        for k, (name, vals) in enumerate(series):
            v = vals[i]
            x0, x1 = sorted((x(0.0), x(v)))
            y = y0 + k * bar_h
            parts.append(f'<rect data-series="{escape(name)}" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" '
                         f'height="{bar_h - 2}" fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(label)}: {fmt(v)}'
                         f'</title></rect><text x="{x1 + 4:.1f}" y="{y + bar_h - 4}">{fmt(v)}</text>')
    parts.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top - 4}" y2="{height - 20}" stroke="#555"/>')
    parts.append("</svg>")
    return "".join(parts)


def columns(title: str, labels: Sequence[str], values: Sequence[float], unit: str, width: int = 530) -> str:
    """Vertical columns in label order (days, `YYYY-MM-DD` shown as `MM-DD`): the shape of emissions over time."""
    height, top, bottom, left = 240, 28, 40, 50
    plot_h, plot_w = height - top - bottom, width - left - 10
    hi = max([*values, 0.0]) or 1.0
    step = plot_w / max(len(values), 1)
    parts = [*_open(title, unit, width, height),
             f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{fmt(hi)}</text>',
             f'<line x1="{left}" x2="{width - 10}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#555"/>']
    every = max(1, len(labels) // 8)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        h = max(v, 0.0) / hi * plot_h
        x = left + i * step
        parts.append(f'<rect data-series="{escape(title)}" x="{x + step * 0.1:.1f}" y="{top + plot_h - h:.1f}" '
                     f'width="{step * 0.8:.1f}" height="{h:.1f}" fill="{PALETTE[2]}"><title>{escape(label)}: '
                     f'{fmt(v)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                         f'{escape(label[5:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Lane:
    """One row under a timeline: a label (a job) and, per lane series of the chart, the spans it covers."""

    label: str
    spans: tuple[tuple[Span, ...], ...]


TIMELINE_LANES = 40  # lanes drawn at most; the rest are counted in a note (the page's table lists them all)


def _moment(t: datetime) -> str:
    return moment_text(t)


def value_range(values: Sequence[float]) -> tuple[float, float]:
    """The y range of a line: from 0 when the lowest value is within half the spread of 0 (the baseline then costs
    little height), else the values' min..max padded by a tenth of their spread, so a curve that varies by a few
    percent around a high level fills the plot instead of lying flat along its top."""
    lo, hi = min(values), max(values)
    spread = hi - lo
    if lo >= 0 and lo <= spread * 0.5:
        return 0.0, hi * 1.05 or 1.0
    pad = spread * 0.1 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


TICK_HOURS = (1, 2, 3, 6, 12, 24, 48, 72, 168, 336, 672)


def time_ticks(t0: datetime, t1: datetime, most: int) -> tuple[list[datetime], str]:
    """Ticks on round hours or days from t0 to t1, at most `most` of them, and the step's strftime format: a date
    ("06 Mar") for day steps; within a day "HH:MM", the caller writing the date at midnight (and on a first tick)."""
    span_h = max((t1 - t0).total_seconds() / 3600, 1e-9)
    step = next((h for h in TICK_HOURS if span_h / h <= max(most - 1, 1)), TICK_HOURS[-1])
    day0 = t0.replace(hour=0, minute=0, second=0, microsecond=0)
    first = day0 + timedelta(hours=math.ceil((t0 - day0).total_seconds() / 3600 / min(step, 24) - 1e-9) * min(step, 24))
    ticks, t = [], first
    while t <= t1:
        ticks.append(t)
        t += timedelta(hours=step)
    return ticks, ("%d %b" if step >= 24 else "%H:%M")


def _windows(spans: Sequence[tuple[Span, str]]) -> list[tuple[Span, list[str]]]:
    """Overlapping or touching spans merged into windows, each with the labels of the spans in it."""
    out: list[tuple[Span, list[str]]] = []
    for (a, b), label in sorted(spans, key=lambda s: s[0]):
        if out and a <= out[-1][0][1]:
            (a0, b0), labels = out[-1]
            out[-1] = ((a0, max(b0, b)), [*labels, label] if label not in labels else labels)
        else:
            out.append(((a, b), [label]))
    return out


def timeline(title: str, unit: str, line: tuple[str, Sequence[tuple[datetime, datetime, float]]],
             lane_series: Sequence[str], lanes: Sequence[Lane], *, shade: int | None = None,
             width: int = 1100) -> str:
    """A value over time as a step line (each piece holds its value from start to end; a gap between pieces breaks
    the line), with one lane per `lanes` entry underneath: a thin bar per lane series over the spans it covers.
    `shade` names a lane series (by index) whose spans are also shaded across the plot, so a reader sees which
    stretches of the line they fell on. Colours: the line blue, lane series green, red, then the palette."""
    name, pieces = line
    if not pieces:
        raise ValueError("nothing to plot: the series is empty")
    colours = [PALETTE[(0, 1, 3, 4, 5)[k % 5]] for k in range(len(lane_series))]
    drawn, hidden = lanes[:TIMELINE_LANES], max(len(lanes) - TIMELINE_LANES, 0)
    left, right, top, plot_h, lane_h = 110, width - 20, 62, 300, 14
    bottom = top + plot_h
    lanes_top = bottom + 46
    height = lanes_top + lane_h * len(drawn) + (22 if hidden else 8)
    spans = [s for lane in lanes for series in lane.spans for s in series]
    t0 = min([pieces[0][0], *(s[0] for s in spans)]).timestamp()
    t1 = max([pieces[-1][1], *(s[1] for s in spans)]).timestamp()
    v0, v1 = value_range([v for _, _, v in pieces])

    def x(t: datetime) -> float:
        return left + (t.timestamp() - t0) / ((t1 - t0) or 1.0) * (right - left)

    def y(v: float) -> float:
        return bottom - (v - v0) / ((v1 - v0) or 1.0) * plot_h

    def bar(s: Span, y0: float, h: float, fill: str, attrs: str, tip: str) -> str:
        return (f'<rect {attrs} x="{x(s[0]):.1f}" y="{y0:.1f}" width="{max(x(s[1]) - x(s[0]), 1.0):.1f}" '
                f'height="{h:g}" fill="{fill}"><title>{escape(tip)}: {_moment(s[0])} .. {_moment(s[1])}</title></rect>')

    parts = [f'<svg {XMLNS} role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" {FONT}>'
             f'<title>{escape(title)}</title><rect width="100%" height="100%" fill="#fff"/>',
             f'<text x="0" y="16" font-size="14" font-weight="600">{escape(title)}</text>',
             _legend([name, *lane_series], [PALETTE[2], *colours], left, 26),
             f'<text x="{left - 6}" y="{top - 6}" text-anchor="end">{escape(unit)}</text>']
    for v in nice_ticks(v0, v1):
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e1e1e1"/>'
                     f'<text class="tick-y" x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    tz = pieces[0][0].tzinfo
    start, end = datetime.fromtimestamp(t0, tz), datetime.fromtimestamp(t1, tz)
    ticks, fmt_ = time_ticks(start, end, max(int((right - left) // 90), 3))
    for i, tick in enumerate(ticks):
        label = tick.strftime(fmt_)
        if fmt_ == "%H:%M" and (tick.hour, tick.minute) == (0, 0):
            label = tick.strftime("%d %b")
        elif fmt_ == "%H:%M" and i == 0:
            label = tick.strftime("%d %b %H:%M")
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top}" y2="{bottom}" stroke="#e1e1e1"/>'
                     f'<text class="tick-x" x="{x(tick):.1f}" y="{bottom + 16}" text-anchor="middle">'
                     f'{escape(label)}</text>')
    zone = start.tzname() or "UTC"
    parts.append(f'<text class="axis-x" x="{(left + right) / 2:.1f}" y="{bottom + 34}" text-anchor="middle" '
                 f'fill="#555">{escape(start.strftime("%Y-%m-%d %H:%M"))} .. {escape(end.strftime("%Y-%m-%d %H:%M"))}'
                 f' {escape(zone)}</text>')
    if shade is not None:
        for lane in lanes:
            for s in lane.spans[shade]:
                parts.append(bar(s, top, plot_h, colours[shade], f'data-shade="{escape(lane_series[shade])}" '
                                 'fill-opacity="0.15"', f"{lane.label} {lane_series[shade]}"))
        # Each window (overlapping shaded spans merged) labelled just above the plot, unless it would overlap the
        # label before it (about 7 px a character at 12 px).
        label_end = -math.inf
        for (a, b), labels in _windows([(s, lane.label) for lane in lanes for s in lane.spans[shade]]):
            who = labels[0] if len(labels) == 1 else f"{len(labels)} jobs"
            text = f"{lane_series[shade]}: {who}"
            half = 3.5 * len(text)
            mid = min(max((x(a) + x(b)) / 2, left + half), width - half)
            if mid - half > label_end + 8:
                label_end = mid + half
                parts.append(f'<text class="window" x="{mid:.1f}" y="{top - 8}" text-anchor="middle" '
                             f'fill="{colours[shade]}">{escape(text)}</text>')
    runs: list[list[tuple[datetime, datetime, float]]] = []
    for piece in pieces:
        if runs and runs[-1][-1][1] == piece[0]:
            runs[-1].append(piece)
        else:
            runs.append([piece])
    for run in runs:
        points = " ".join(f"{x(a):.1f},{y(v):.1f} {x(b):.1f},{y(v):.1f}" for a, b, v in run)
        parts.append(f'<polyline data-series="{escape(name)}" points="{points}" fill="none" stroke="{PALETTE[2]}" '
                     'stroke-width="1.5"/>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#555"/>'
                 f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#555"/>')
    for i, lane in enumerate(drawn):
        y0 = lanes_top + i * lane_h
        parts.append(f'<text class="lane" x="{left - 6}" y="{y0 + 11}" text-anchor="end" font-size="11">'
                     f"{escape(lane.label[:18])}</text>")
        bar_h = (lane_h - 2) / max(len(lane_series), 1)
        for k, series in enumerate(lane.spans):
            for s in series:
                parts.append(bar(s, y0 + k * bar_h, bar_h, colours[k], f'data-series="{escape(lane_series[k])}" '
                                 f'data-lane="{escape(lane.label)}"', f"{lane.label} {lane_series[k]}"))
    if hidden:
        parts.append(f'<text x="{left}" y="{height - 6}">... and {hidden} more (not drawn)</text>')
    parts.append("</svg>")
    return "".join(parts)
