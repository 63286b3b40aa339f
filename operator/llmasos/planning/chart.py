"""Plots for `llmasos simulate`: grid intensity, the windows chosen, and what they saved, as PNG and HTML.

Pure functions from data to bytes/text, with no plotting dependency: the operator image stays small, and the output
is deterministic (testable byte for byte). The PNG is drawn on an RGB canvas with a 3x5 pixel font and encoded with
zlib; the HTML carries the same picture as inline SVG with a table of jobs.
"""

from __future__ import annotations

import html
import itertools
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime

from llmasos.planning.timing.carbon_window import Segment
from llmasos.planning.timing.forecast import Forecast, format_instant

RGB = tuple[int, int, int]
INK: RGB = (40, 40, 40)
GRID: RGB = (225, 225, 225)
PLANNED: RGB = (46, 160, 67)
RUN_NOW: RGB = (214, 69, 65)
LINE: RGB = (33, 102, 172)

# 3x5 glyphs, rows top to bottom, "1" = ink.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "G": "011100101101011", "H": "101101111101101", "I": "111010010010111", "J": "001001001101010",
    "K": "101101110101101", "L": "100100100100111", "M": "101111111101101", "N": "110101101101101",
    "O": "010101101101010", "P": "110101110100100", "Q": "010101101110011", "R": "110101110101101",
    "S": "011100010001110", "T": "111010010010010", "U": "101101101101111", "V": "101101101101010",
    "W": "101101111111101", "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    "-": "000000111000000", ":": "000010000010000", ".": "000000000000010", "/": "001001010100100",
    "%": "101001010100101", " ": "000000000000000", "(": "010100100100010", ")": "010001001001010",
    ",": "000000000010100", "=": "000111000111000",
}  # fmt: skip


@dataclass(frozen=True)
class ChartJob:
    """One job: where the planner ran it and where running at submission would have."""

    id: str
    planned: tuple[Segment, ...]
    run_now: tuple[Segment, ...]
    savings_percent: float


@dataclass(frozen=True)
class ChartData:
    title: str
    series: Forecast
    jobs: tuple[ChartJob, ...]
    notes: tuple[str, ...] = ()


class Canvas:
    """A white RGB raster with the few drawing operations the chart needs."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def dot(self, x: int, y: int, color: RGB, alpha: float = 1.0) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            for k in range(3):
                self.pixels[i + k] = round(self.pixels[i + k] * (1 - alpha) + color[k] * alpha)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: RGB, alpha: float = 1.0) -> None:
        for y in range(max(min(y0, y1), 0), min(max(y0, y1), self.height - 1) + 1):
            for x in range(max(min(x0, x1), 0), min(max(x0, x1), self.width - 1) + 1):
                self.dot(x, y, color, alpha)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: RGB) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.dot(x0, y0, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: RGB = INK, scale: int = 2) -> None:
        for n, char in enumerate(text.upper()):
            glyph = _GLYPHS.get(char, _GLYPHS[" "])
            for bit, on in enumerate(glyph):
                if on == "1":
                    gx, gy = x + n * 4 * scale + (bit % 3) * scale, y + (bit // 3) * scale
                    self.rect(gx, gy, gx + scale - 1, gy + scale - 1, color)

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width * 3 : (y + 1) * self.width * 3]) for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
        )


@dataclass(frozen=True)
class _Frame:
    """Maps times and intensities to pixels."""

    t0: float
    t1: float
    v0: float
    v1: float
    left: int
    top: int
    right: int
    bottom: int

    def x(self, moment: datetime) -> int:
        return self.left + round((moment.timestamp() - self.t0) / (self.t1 - self.t0) * (self.right - self.left))

    def y(self, value: float) -> int:
        return self.bottom - round((value - self.v0) / (self.v1 - self.v0) * (self.bottom - self.top))


def _frame(data: ChartData, width: int, height: int, lanes: int) -> _Frame:
    if data.series.start is None or data.series.end is None:
        raise ValueError("nothing to plot: the series is empty")
    values = [p.intensity for p in data.series.points]
    top_value = max(values) * 1.05 or 1.0
    return _Frame(
        data.series.start.timestamp(), data.series.end.timestamp(), 0.0, top_value, 70, 40, width - 20,
        height - 40 - 8 * lanes,
    )  # fmt: skip


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    raw = (hi - lo) / count
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1.0
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(int(lo // step), int(hi // step) + 1) if lo <= step * i <= hi]


def render_png(data: ChartData, width: int = 1200, height: int = 520) -> bytes:
    lanes = min(len(data.jobs), 20)
    f = _frame(data, width, height, lanes)
    canvas = Canvas(width, height)
    for v in _ticks(f.v0, f.v1):
        canvas.line(f.left, f.y(v), f.right, f.y(v), GRID)
        canvas.text(8, f.y(v) - 5, f"{v:g}")
    days = sorted({p.start.replace(hour=0, minute=0) for p in data.series.points})
    for day in days[:: max(len(days) // 8, 1)]:
        if f.t0 <= day.timestamp() <= f.t1:
            canvas.line(f.x(day), f.top, f.x(day), f.bottom, GRID)
            canvas.text(f.x(day) + 2, height - 18, day.strftime("%m-%d"))
    for job in data.jobs:
        for seg in job.planned:
            canvas.rect(f.x(seg.start), f.top, f.x(seg.end), f.bottom, PLANNED, 0.18)
    points = data.series.points
    for a, b in itertools.pairwise(points):
        canvas.line(f.x(a.start), f.y(a.intensity), f.x(b.start), f.y(b.intensity), LINE)
    for lane, job in enumerate(data.jobs[:lanes]):
        y = f.bottom + 6 + lane * 8
        for seg in job.run_now:
            canvas.rect(f.x(seg.start), y, f.x(seg.end), y + 2, RUN_NOW)
        for seg in job.planned:
            canvas.rect(f.x(seg.start), y + 3, f.x(seg.end), y + 5, PLANNED)
    canvas.rect(f.left, f.top, f.left, f.bottom, INK)
    canvas.rect(f.left, f.bottom, f.right, f.bottom, INK)
    canvas.text(f.left, 10, data.title)
    canvas.text(8, f.top - 14, "G/KWH")
    legend_x = max(f.right - 330, f.left)
    for n, (label, color) in enumerate((("INTENSITY", LINE), ("PLANNED", PLANNED), ("RUN NOW", RUN_NOW))):
        x = legend_x + n * 115
        canvas.rect(x, 12, x + 14, 18, color)
        canvas.text(x + 20, 10, label)
    return canvas.png()


def render_html(data: ChartData, width: int = 1200, height: int = 520) -> str:
    lanes = min(len(data.jobs), 20)
    f = _frame(data, width, height, lanes)
    esc = html.escape
    svg: list[str] = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12">']
    for v in _ticks(f.v0, f.v1):
        svg.append(f'<line x1="{f.left}" x2="{f.right}" y1="{f.y(v)}" y2="{f.y(v)}" stroke="#e1e1e1"/>')
        svg.append(f'<text x="{f.left - 6}" y="{f.y(v) + 4}" text-anchor="end">{v:g}</text>')
    for job in data.jobs:
        for seg in job.planned:
            svg.append(
                f'<rect x="{f.x(seg.start)}" y="{f.top}" width="{max(f.x(seg.end) - f.x(seg.start), 1)}" '
                f'height="{f.bottom - f.top}" fill="#2ea043" fill-opacity="0.18"><title>{esc(job.id)}</title></rect>'
            )
    path = " ".join(f"{f.x(p.start)},{f.y(p.intensity)}" for p in data.series.points)
    svg.append(f'<polyline points="{path}" fill="none" stroke="#2166ac" stroke-width="1.5"/>')
    for lane, job in enumerate(data.jobs[:lanes]):
        y = f.bottom + 6 + lane * 8
        for seg, color, dy in [*((s, "#d64541", 0) for s in job.run_now), *((s, "#2ea043", 3) for s in job.planned)]:
            svg.append(
                f'<rect x="{f.x(seg.start)}" y="{y + dy}" width="{max(f.x(seg.end) - f.x(seg.start), 1)}" '
                f'height="3" fill="{color}"><title>{esc(job.id)}</title></rect>'
            )
    svg.append(f'<text x="{f.left}" y="24" font-size="16">{esc(data.title)}</text>')
    svg.append(f'<text x="8" y="{f.top - 8}">gCO2e/kWh</text></svg>')
    rows = "".join(
        f"<tr><td>{esc(j.id)}</td><td>{esc(', '.join(_span(s) for s in j.planned))}</td>"
        f"<td>{esc(', '.join(_span(s) for s in j.run_now))}</td><td>{j.savings_percent:.1f}%</td></tr>"
        for j in data.jobs
    )
    notes = "".join(f"<li>{esc(n)}</li>" for n in data.notes)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(data.title)}</title></head><body>"
        f"<h1>{esc(data.title)}</h1>{''.join(svg)}<p>Blue: grid intensity. Green: windows the planner chose. "
        f"Red: running at submission.</p><ul>{notes}</ul><table border='1' cellpadding='3'>"
        f"<tr><th>job</th><th>planned</th><th>run now</th><th>saved</th></tr>{rows}</table></body></html>"
    )


def _span(seg: Segment) -> str:
    return f"{format_instant(seg.start)} .. {format_instant(seg.end)}"
