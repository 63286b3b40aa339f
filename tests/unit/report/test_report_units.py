"""The report speaks one convention (api.units) and says when its intensities are a historical replay."""

from __future__ import annotations

from datetime import UTC, datetime

from llmasos.report.aggregate import build_report
from llmasos.report.html import render_html
from llmasos.report.model import items_of, parse_llmjob
from tests.unit.report.sample import sample_jobs

NOW = datetime(2026, 12, 4, 14, tzinfo=UTC)


def page() -> str:
    jobs = [parse_llmjob(item) for item in items_of(sample_jobs())]
    return render_html(build_report(jobs, NOW))


def test_replayed_jobs_are_named_as_such() -> None:
    html = page()
    assert "2 of 3 job(s) were accounted on the shipped trace: historical replay, not a forecast" in html
    assert "trace (historical replay)" in html


def test_one_unit_and_time_convention() -> None:
    html = page()
    assert "Generated 2026-12-04 14:00 UTC" in html
    assert "17.0 kWh" in html  # the IT energy card, scaled by api.units
    assert "run-now g<" not in html
    assert "run-now gCO2e" in html
