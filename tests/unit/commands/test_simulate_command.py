"""`llmasos simulate`: the operator's planning loop over a trace, re-planning started interruptible jobs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmasos.cli import main
from llmasos.commands.simulate import replay_jobs
from llmasos.planning.timing import backtest
from llmasos.planning.timing.carbon_window import Segment
from tests.unit.planning.builders import T0
from tests.unit.planning.timing.test_backtest import MISLEAD_TRUTH, misleading_then_true
from tests.unit.report.sample import external_references

H = timedelta(hours=1)
NS = "{http://www.w3.org/2000/svg}"
JOBS_CSV = (
    "id,submitted_at,duration,slack,interruptible\n"
    "a,2021-06-01T08:00:00Z,6h,24h,false\n"
    "b,2021-06-01T20:00:00Z,3h,36h,true\n"
    "c,2021-06-03T05:00:00Z,5h,40h,true\n"
)
T_FIRST_SUBMITTED = datetime(2021, 6, 1, 8, tzinfo=UTC)
T_LAST_DEADLINE = datetime(2021, 6, 3, 5, tzinfo=UTC) + 45 * H


def simulate(tmp_path: Path, name: str, *extra: str) -> str:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(JOBS_CSV)
    argv = ["simulate", "--zone", "US-CAL-CISO", "--jobs", str(jobs), "--out", str(tmp_path / name), *extra]
    assert main(argv) == 0
    return (tmp_path / name / "simulate.html").read_text()


def planned_rows(html: str) -> dict[str, str]:
    """Job id -> the planner's segments, from the HTML page's per-job table."""
    cells = re.findall(r"<td>([^<]*)</td>", html)
    return {cells[i]: cells[i + 1] for i in range(0, len(cells) - 3, 4)}


def test_simulate_writes_svg_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = simulate(tmp_path, "sim")
    assert sorted(p.name for p in (tmp_path / "sim").iterdir()) == ["simulate.html", "simulate.svg"]
    svg = (tmp_path / "sim" / "simulate.svg").read_text()
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert svg in html  # the page carries the same chart inline
    assert external_references(html) == []
    assert "default-src 'none'" in html
    rows = planned_rows(html)
    assert list(rows) == ["a", "b", "c"]
    # One lane per job; its planned bars are the table's planned segments, in order.
    for job, segments in rows.items():
        bars = [e for e in root.iter(f"{NS}rect") if e.get("data-lane") == job and e.get("data-series") == "planned"]
        titles = [e.findtext(f"{NS}title") or "" for e in bars]
        assert [t.split(": ")[1] for t in titles] == segments.split(", ")  # one time format for both
        assert [e for e in root.iter(f"{NS}rect") if e.get("data-lane") == job and e.get("data-series") == "run now"]
    shades = [e for e in root.iter(f"{NS}rect") if e.get("data-shade") == "planned"]
    assert len(shades) == sum(len(v.split(", ")) for v in rows.values())
    # The true intensity from 6 h before the first submission to 6 h after the last deadline, hour by hour.
    (line,) = [e for e in root.iter(f"{NS}polyline") if e.get("data-series") == "grid intensity"]
    hours = (T_LAST_DEADLINE - T_FIRST_SUBMITTED).total_seconds() / 3600 + 12
    assert len((line.get("points") or "").split()) == 2 * hours
    out = capsys.readouterr().out
    assert "missed deadlines: 0" in out
    assert "started interruptible jobs re-planned on every newer forecast" in out
    assert f"wrote {tmp_path / 'sim' / 'simulate.svg'} and {tmp_path / 'sim' / 'simulate.html'}" in out


def test_simulate_re_plans_started_interruptible_jobs_unless_told_to_follow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # With 20 % error, job c starts at 15:00 on day three; newer forecasts move its two later hours.
    replanned = planned_rows(simulate(tmp_path, "replan", "--forecast-error", "0.2"))
    followed = planned_rows(simulate(tmp_path, "follow", "--forecast-error", "0.2", "--follow-plan"))
    assert "follow their first plan (--follow-plan)" in capsys.readouterr().out
    assert replanned["a"] == followed["a"]  # not interruptible: never re-planned after its start
    first_run = "2021-06-03 15:00 UTC .. 2021-06-03 18:00 UTC"
    assert replanned["c"].split(", ")[0] == followed["c"].split(", ")[0] == first_run
    assert replanned["c"] != followed["c"]


def test_replay_moves_a_started_jobs_later_segment_on_a_newer_forecast() -> None:
    # The first forecast puts the second hour at 10:00; the next one shows 20:00 is the cleanest: the operator moves it.
    job = backtest.BacktestJob("j", T0, 2 * H, T0 + 40 * H, interruptible=True)
    outcomes, chart = replay_jobs([job], MISLEAD_TRUTH, misleading_then_true)
    planner = next(o for o in outcomes if o.strategy == "planner")
    assert planner.segments == (Segment(T0, T0 + H), Segment(T0 + 20 * H, T0 + 21 * H))
    assert chart[0].planned == planner.segments
    assert [o.strategy for o in outcomes] == ["run_now", "planner", "optimum"]
    followed, _ = replay_jobs([job], MISLEAD_TRUTH, misleading_then_true, follow_plan=True)
    assert followed[1].segments == (Segment(T0, T0 + H), Segment(T0 + 10 * H, T0 + 11 * H))
    assert followed[1].intensity > planner.intensity


@pytest.mark.parametrize(
    ("csv_text", "extra", "message"),
    [
        ("id,submitted_at,duration\na,2021-06-01T08:00:00Z,6h\n", [],
         "jobs line 2: needs a deadline or a slack column"),
        # Results are keyed by id: a repeated one would silently drop a job from the figures.
        (JOBS_CSV + "b,2021-06-02T08:00:00Z,1h,2h,false\n", [], "jobs line 5: id 'b' is already used on line 3"),
        ("id,submitted_at,duration,slack,interruptible\na,2021-06-01T08:00:00Z,0s,2h,no\n", [],
         "jobs line 2: duration must be longer than 0, got '0s'"),
        ("id,submitted_at,duration,slack,interruptible\na,2021-06-01T08:00:00Z,0,2h,no\n", [],
         "jobs line 2: duration must be longer than 0, got '0'"),
        (JOBS_CSV, ["--horizon", "0h"], "--horizon must be longer than 0, got '0h'"),
    ],
)
def test_simulate_bad_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], csv_text: str, extra: list[str], message: str
) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(csv_text)
    argv = ["simulate", "--zone", "SE", "--jobs", str(jobs), "--out", str(tmp_path / "x"), *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
