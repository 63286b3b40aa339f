"""Splitting interruptible jobs: the greedy optimum and the segment limits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from llmasos.planning.timing.segments import Span, cost, enforce_limits, greedy_split, merge
from llmasos.planning.timing.timeline import build_timeline
from tests.unit.planning.builders import T0, make_forecast

H = 3600.0


def timeline(values: list[float]):  # type: ignore[no-untyped-def]
    return build_timeline(make_forecast(values), T0, T0 + timedelta(hours=len(values)))


def test_greedy_takes_the_cleanest_time() -> None:
    tl = timeline([5, 1, 9, 2, 9, 3])
    spans = greedy_split(tl, 0, 6 * H, 3 * H)
    assert spans == [Span(H, 2 * H), Span(3 * H, 4 * H), Span(5 * H, 6 * H)]
    assert cost(tl, spans) == pytest.approx((1 + 2 + 3) * H)


def test_partial_piece_hugs_a_chosen_neighbour() -> None:
    tl = timeline([9, 5, 1, 9])
    spans = greedy_split(tl, 0, 4 * H, 1.5 * H)
    assert spans == [Span(1.5 * H, 3 * H)]


def test_does_not_fit() -> None:
    assert greedy_split(timeline([1, 1]), 0, 2 * H, 3 * H) == []


def test_merge_joins_touching_spans() -> None:
    assert merge([Span(2, 3), Span(0, 1), Span(1, 2), Span(5, 5)]) == [Span(0, 3)]


def test_max_segments_closes_the_cheapest_gap() -> None:
    tl = timeline([1, 50, 1, 9, 9, 1])
    spans = greedy_split(tl, 0, 6 * H, 3 * H)
    assert len(spans) == 3
    limited = enforce_limits(tl, spans, 0.0, 2)
    assert len(limited) <= 2
    assert sum(s.length for s in limited) == pytest.approx(3 * H)
    assert cost(tl, limited) >= cost(tl, spans)


def test_min_segment_removes_short_runs() -> None:
    tl = timeline([1, 9, 9, 2, 2, 9])
    spans = greedy_split(tl, 0, 6 * H, 2.5 * H)
    limited = enforce_limits(tl, spans, 2 * H, None)
    assert len(limited) == 1 or all(s.length >= 2 * H - 1e-6 for s in limited)
    assert sum(s.length for s in limited) == pytest.approx(2.5 * H)
