"""The carbon AdmissionCheck's verdicts: held until the window, never past the latest start, never stuck."""

from __future__ import annotations

from datetime import timedelta

from llmasos.api.kueue_timing import AnnotationError, TimingRequest
from llmasos.planning.timing import admission_gate as g
from tests.unit.planning.builders import T0, make_forecast

# Dirty for three hours, clean from 03:00 to 05:00, dirty again.
FORECAST = make_forecast([500, 500, 500, 100, 100, 500, 500, 500, 500, 500, 500, 500], zone="DE")


def request(deadline_h: float = 12, duration_h: float = 1) -> TimingRequest:
    return TimingRequest(deadline=T0 + timedelta(hours=deadline_h), expected_duration=timedelta(hours=duration_h),
                         submitted_at=T0)


def test_no_timing_and_bad_annotations_pass_at_once() -> None:
    assert g.decide(None, FORECAST, T0).state == "Ready"
    bad = g.decide(AnnotationError("llmasos.io/deadline 'x' is not a time", "llmasos.io/deadline"), FORECAST, T0)
    assert (bad.state, bad.reason) == ("Ready", g.INVALID_ANNOTATIONS)
    assert "llmasos.io/deadline" in bad.message


def test_held_until_the_lowest_carbon_window_then_ready() -> None:
    held = g.decide(request(), FORECAST, T0)
    assert (held.state, held.reason) == ("Pending", g.WAITING)
    assert held.recheck_at == T0 + timedelta(hours=3)
    assert "2024-03-06T03:00:00Z" in held.message
    assert "80% below starting now" in held.message
    opened = g.decide(request(), FORECAST, T0 + timedelta(hours=3))
    assert (opened.state, opened.reason) == ("Ready", g.WINDOW_OPEN)


def test_latest_start_releases_whatever_the_forecast() -> None:
    at_latest = g.decide(request(deadline_h=4, duration_h=2), FORECAST, T0 + timedelta(hours=2))
    assert (at_latest.state, at_latest.reason) == ("Ready", g.LATEST_START)


def test_window_never_after_latest_start() -> None:
    # Deadline 03:30 with one hour to run: the clean hours are out of reach; the plan starts by 02:30.
    held = g.decide(request(deadline_h=3.5), FORECAST, T0)
    assert held.recheck_at is not None
    assert held.recheck_at <= T0 + timedelta(hours=2, minutes=30)


def test_no_data_holds_until_latest_start_and_says_so() -> None:
    v = g.decide(request(deadline_h=6), None, T0, data_message="electricitymaps: HTTP 503")
    assert (v.state, v.reason) == ("Pending", g.NO_CARBON_DATA)
    assert v.recheck_at == T0 + timedelta(hours=5)
    assert "carbon data unavailable (electricitymaps: HTTP 503)" in v.message
    assert g.decide(request(deadline_h=6), None, T0 + timedelta(hours=5)).state == "Ready"


def test_deadline_in_the_past_or_unreachable_passes_with_a_message() -> None:
    past = g.decide(request(deadline_h=1), FORECAST, T0 + timedelta(hours=2))
    assert (past.state, past.reason) == ("Ready", g.DEADLINE_UNREACHABLE)
    assert "cannot be met" in past.message
    short = g.decide(request(deadline_h=0.5, duration_h=1), FORECAST, T0)
    assert (short.state, short.reason) == ("Ready", g.DEADLINE_UNREACHABLE)
