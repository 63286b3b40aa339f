"""The one SVG module: every chart parses as SVG (xml.etree) and carries exactly the series, points and labels drawn."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from llmasos.report.aggregate import build_report
from llmasos.report.html import render_html
from llmasos.report.model import items_of, parse_llmjob
from llmasos.report.svg import TIMELINE_LANES, Lane, columns, hbars, nice_ticks, timeline
from tests.unit.report.sample import sample_jobs

NS = "{http://www.w3.org/2000/svg}"
T0 = datetime(2024, 3, 6, tzinfo=UTC)
H = timedelta(hours=1)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def drawn(root: ET.Element, series: str, tag: str = "rect") -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if e.get("data-series") == series]


def texts(root: ET.Element, cls: str | None = None) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text") if cls is None or e.get("class") == cls]


def tip(e: ET.Element) -> str:
    title = e.find(f"{NS}title")
    assert title is not None
    return title.text or ""


@pytest.mark.parametrize(("lo", "hi", "ticks"), [
    (0, 262.5, [0, 50, 100, 150, 200, 250]),
    (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0, 9, [0, 2, 4, 6, 8]),
    (0, 1050, [0, 200, 400, 600, 800, 1000]),
    (5, 5, [5]),
])
def test_nice_ticks_are_round_and_inside(lo: float, hi: float, ticks: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(ticks)


def test_hbars_one_bar_per_label_and_series_with_negative_values_left_of_zero() -> None:
    root = parse(hbars("Savings", ["a", "b <&>", "c"], [("actual", [3.0, -1.0, 0.0]), ("run now", [4.0, 2.0, 1.0])],
                       "gCO2e"))
    actual, run_now = drawn(root, "actual"), drawn(root, "run now")
    assert [tip(e) for e in actual] == ["a: 3.00", "b <&>: -1.00", "c: 0.0"]  # escaped in, parsed back out
    assert [tip(e) for e in run_now] == ["a: 4.00", "b <&>: 2.00", "c: 1.00"]
    legend = root.find(f"{NS}g")
    assert legend is not None
    assert legend.get("class") == "legend"
    assert [t.text for t in legend.iter(f"{NS}text")] == ["actual", "run now"]  # a legend, for two series
    zero = float(next(root.iter(f"{NS}line")).get("x1") or 0)
    negative = actual[1]
    assert float(negative.get("x") or 0) + float(negative.get("width") or 0) == pytest.approx(zero, abs=0.1)
    assert float(actual[0].get("x") or 0) == pytest.approx(zero, abs=0.1)
    assert float(actual[0].get("width") or 0) < float(run_now[0].get("width") or 0)  # 3 < 4


def test_columns_one_column_per_day_heights_in_proportion() -> None:
    root = parse(columns("By day", ["2024-03-06", "2024-03-07"], [50.0, 100.0], "gCO2e"))
    bars = drawn(root, "By day")
    assert [tip(e) for e in bars] == ["2024-03-06: 50.0", "2024-03-07: 100.0"]
    assert float(bars[1].get("height") or 0) == pytest.approx(2 * float(bars[0].get("height") or 0))
    assert "03-07" in texts(root)


def test_timeline_draws_the_steps_lanes_and_shades() -> None:
    values = [100.0, 50.0, 200.0, 10.0]
    pieces = [(T0 + i * H, T0 + (i + 1) * H, v) for i, v in enumerate(values)]
    lanes = [Lane("j1", (((T0 + 2 * H, T0 + 3 * H),), ((T0, T0 + H),))),
             Lane("j2", (((T0 + H, T0 + 2 * H), (T0 + 3 * H, T0 + 4 * H)), ((T0, T0 + 2 * H),)))]
    root = parse(timeline("T", "g/kWh", ("intensity", pieces), ("planned", "run now"), lanes, shade=0, width=470))
    (line,) = drawn(root, "intensity", "polyline")
    points = [tuple(map(float, p.split(","))) for p in (line.get("points") or "").split()]
    assert len(points) == 2 * len(values)  # a step line: each value from its start to its end
    ys = [y for _, y in points[::2]]
    assert ys[2] < ys[0] < ys[1] < ys[3]  # higher value, higher on the page (smaller y)
    assert (points[0][0], points[-1][0]) == (110, 450)  # the plot spans left..width-20 over the four hours
    planned, run_now = drawn(root, "planned"), drawn(root, "run now")
    assert [(e.get("data-lane"), tip(e)) for e in planned] == [
        ("j1", "j1 planned: 2024-03-06 02:00 UTC .. 2024-03-06 03:00 UTC"),
        ("j2", "j2 planned: 2024-03-06 01:00 UTC .. 2024-03-06 02:00 UTC"),
        ("j2", "j2 planned: 2024-03-06 03:00 UTC .. 2024-03-06 04:00 UTC")]
    assert [e.get("data-lane") for e in run_now] == ["j1", "j2"]
    assert float(run_now[1].get("width") or 0) == pytest.approx(2 * 85)  # two of four hours over 340 px
    shades = [e for e in root.iter(f"{NS}rect") if e.get("data-shade") == "planned"]
    assert [e.get("fill-opacity") for e in shades] == ["0.15"] * 3
    assert texts(root, "lane") == ["j1", "j2"]
    assert texts(root, "tick-y") == ["0", "50", "100", "150", "200"]
    assert texts(root, "tick-x") == ["06 Mar", "02:00", "04:00"]  # the user's dates, round hours
    assert texts(root, "axis-x") == ["2024-03-06 00:00 .. 2024-03-06 04:00 UTC"]
    assert texts(root, "window") == ["planned: 2 jobs"]  # j2's and j1's planned spans touch: one window
    assert [t for t in texts(root) if t in ("intensity", "planned", "run now")] == ["intensity", "planned", "run now"]


def test_timeline_breaks_the_line_at_a_gap_and_caps_the_lanes() -> None:
    pieces = [(T0, T0 + H, 1.0), (T0 + H, T0 + 2 * H, 2.0), (T0 + 5 * H, T0 + 6 * H, 3.0)]
    lanes = [Lane(f"job-{i}", (((T0, T0 + H),),)) for i in range(TIMELINE_LANES + 3)]
    root = parse(timeline("T", "u", ("v", pieces), ("planned",), lanes))
    assert [len((e.get("points") or "").split()) for e in drawn(root, "v", "polyline")] == [4, 2]
    assert len(drawn(root, "planned")) == TIMELINE_LANES
    assert "... and 3 more (not drawn)" in texts(root)
    assert not [e for e in root.iter(f"{NS}rect") if e.get("data-shade")]  # no shade asked for
    with pytest.raises(ValueError, match="empty"):
        timeline("T", "u", ("v", []), (), [])


def test_every_report_chart_parses_with_its_series() -> None:
    report = build_report([parse_llmjob(o) for o in items_of(sample_jobs())], datetime(2024, 3, 7, tzinfo=UTC))
    charts = [parse(svg) for svg in re.findall(r"<svg .*?</svg>", render_html(report))]
    assert [c.findtext(f"{NS}title") for c in charts] == [
        "Emissions by namespace", "Savings by lever", "Energy by team", "Emissions by model",
        "Emissions by start day (UTC)"]
    by_ns = charts[0]
    assert [tip(e) for e in drawn(by_ns, "actual")] == ["ml: 3.60 k", "research: 480.0"]
    assert [tip(e) for e in drawn(by_ns, "had it run now")] == ["ml: 4.60 k", "research: 400.0"]
    assert [tip(e) for e in drawn(charts[1], "saved")] == ["time shifting: 920.0", "pool choice: 200.0",
                                                             "power caps: 300.0"]
    assert len(drawn(charts[2], "IT energy")) == 3  # nlp, vision, unassigned
    assert [tip(e) for e in drawn(charts[4], "Emissions by start day (UTC)")] == ["2024-03-06: 4.08 k"]


def test_timeline_y_axis_hugs_a_line_far_from_zero_and_fonts_are_readable() -> None:
    """issue 20, item 7: a curve between 300 and 340 fills the plot (no axis from 0 that flattens it); several days
    get date ticks; no text smaller than 11 px."""
    pieces = [(T0 + i * H, T0 + (i + 1) * H, 300.0 + (i % 5) * 10) for i in range(72)]
    lanes = [Lane("long-job-name", (((T0 + 30 * H, T0 + 34 * H),),))]
    svg = timeline("T", "g/kWh", ("intensity", pieces), ("planned",), lanes, shade=0)
    root = parse(svg)
    ticks = [float(t) for t in texts(root, "tick-y")]
    assert ticks[0] >= 290
    assert ticks[-1] <= 350
    assert len(ticks) >= 3
    (line,) = drawn(root, "intensity", "polyline")
    ys = [float(p.split(",")[1]) for p in (line.get("points") or "").split()]
    assert max(ys) - min(ys) > 200  # of a 300 px plot
    assert texts(root, "tick-x")[:4] == ["06 Mar", "12:00", "07 Mar", "12:00"]
    assert texts(root, "window") == ["planned: long-job-name"]
    sizes = [int(v) for v in re.findall(r'font-size="(\d+)"', svg)]
    assert sizes
    assert min(sizes) >= 11
