"""The planner's view of the future: a gap-free intensity timeline with fast integrals over any window.

A forecast rarely covers everything a job could use: steps may be missing, and the horizon (often 24 h) may end
before the job's latest start. Treating unknown time as clean would defer jobs into the unknown; treating it as
infinitely dirty would make the planner ignore it altogether. Instead every unknown stretch gets an *estimate*: the
same time of day from the nearest known day (grid intensity is strongly diurnal), else the mean of what is known,
raised by a risk premium. Pieces remember whether they were estimated, so a plan can say how much of it rests on
guesses and the operator re-plans when a newer forecast arrives.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmasos.planning.timing.forecast import Forecast, Piece, ensure_utc

DAY = timedelta(days=1)
DEFAULT_UNKNOWN_PREMIUM = 0.05
SEASONAL_LOOKUP_DAYS = 7


@dataclass(frozen=True, slots=True)
class TimelinePiece:
    """[start, end) seconds from the timeline origin at `intensity`; `estimated` marks values beyond the data."""

    start: float
    end: float
    intensity: float
    estimated: bool


@dataclass(frozen=True)
class Timeline:
    """Contiguous pieces from `origin`; prefix integrals give any window's gCO2e/kWh-seconds in O(log n)."""

    origin: datetime
    pieces: tuple[TimelinePiece, ...]
    bounds: tuple[float, ...]
    cumulative: tuple[float, ...]
    cumulative_estimated: tuple[float, ...]

    @classmethod
    def from_pieces(cls, origin: datetime, pieces: list[TimelinePiece]) -> Timeline:
        bounds = [0.0]
        cum = [0.0]
        cum_est = [0.0]
        for p in pieces:
            length = p.end - p.start
            bounds.append(p.end)
            cum.append(cum[-1] + length * p.intensity)
            cum_est.append(cum_est[-1] + (length if p.estimated else 0.0))
        return cls(ensure_utc(origin), tuple(pieces), tuple(bounds), tuple(cum), tuple(cum_est))

    @property
    def length(self) -> float:
        return self.bounds[-1]

    def offset(self, moment: datetime) -> float:
        return (ensure_utc(moment) - self.origin).total_seconds()

    def at(self, seconds: float) -> datetime:
        return self.origin + timedelta(seconds=seconds)

    def _prefix(self, x: float, cum: tuple[float, ...], with_value: bool) -> float:
        x = min(max(x, 0.0), self.length)
        i = bisect_right(self.bounds, x) - 1
        if i >= len(self.pieces):
            return cum[-1]
        piece = self.pieces[i]
        rate = piece.intensity if with_value else 1.0 if piece.estimated else 0.0
        return cum[i] + (x - self.bounds[i]) * rate

    def integral(self, a: float, b: float) -> float:
        """Integral of intensity over [a, b) in (g/kWh)*s; proportional to emissions at constant power."""
        return self._prefix(b, self.cumulative, True) - self._prefix(a, self.cumulative, True)

    def estimated_seconds(self, a: float, b: float) -> float:
        return self._prefix(b, self.cumulative_estimated, False) - self._prefix(a, self.cumulative_estimated, False)

    def value_at(self, x: float) -> float:
        i = min(max(bisect_right(self.bounds, x) - 1, 0), len(self.pieces) - 1)
        return self.pieces[i].intensity

    def is_estimated_at(self, x: float) -> bool:
        i = min(max(bisect_right(self.bounds, x) - 1, 0), len(self.pieces) - 1)
        return self.pieces[i].estimated

    def breakpoints(self, lo: float, hi: float) -> list[float]:
        """Piece boundaries inside [lo, hi]."""
        return list(self.bounds[bisect_left(self.bounds, lo) : bisect_right(self.bounds, hi)])


def estimate_unknown(forecast: Forecast, moment: datetime, premium: float = DEFAULT_UNKNOWN_PREMIUM) -> float:
    """Best guess for a time the forecast does not cover: nearest known same-time-of-day value, else the mean.

    The premium (5 % by default) makes a known window win over an equally good guessed one: a guess may be
    wrong, and a job deferred into the unknown depends on a later forecast arriving.
    """
    if not forecast.points:
        raise ValueError("cannot estimate intensity from an empty forecast")
    for k in range(1, SEASONAL_LOOKUP_DAYS + 1):
        for sign in (-1, 1):
            value = forecast.value_at(moment + sign * k * DAY)
            if value is not None:
                return value * (1.0 + premium)
    mean = forecast.known_mean()
    assert mean is not None
    return mean * (1.0 + premium)


def build_timeline(
    forecast: Forecast, start: datetime, end: datetime, premium: float = DEFAULT_UNKNOWN_PREMIUM
) -> Timeline:
    """A gap-free timeline over [start, end): forecast values where known, step-sized estimates elsewhere."""
    start, end = ensure_utc(start), ensure_utc(end)
    if end <= start:
        raise ValueError(f"empty timeline: {start.isoformat()} .. {end.isoformat()}")
    pieces: list[TimelinePiece] = []
    for piece in forecast.pieces_between(start, end):
        if piece.intensity is not None:
            _append(pieces, start, piece.start, piece.end, piece.intensity, False)
        else:
            for sub in _step_grid(forecast, piece):
                _append(pieces, start, sub.start, sub.end, estimate_unknown(forecast, sub.start, premium), True)
    return Timeline.from_pieces(start, pieces)


def _append(out: list[TimelinePiece], origin: datetime, a: datetime, b: datetime, value: float, est: bool) -> None:
    sa, sb = (a - origin).total_seconds(), (b - origin).total_seconds()
    if out and out[-1].intensity == value and out[-1].estimated == est and out[-1].end == sa:
        out[-1] = TimelinePiece(out[-1].start, sb, value, est)
    else:
        out.append(TimelinePiece(sa, sb, value, est))


def _step_grid(forecast: Forecast, gap: Piece) -> list[Piece]:
    """Split an unknown stretch on the forecast's step grid, so seasonal estimates can vary step by step."""
    anchor = forecast.start or gap.start
    step = forecast.step
    out: list[Piece] = []
    cursor = gap.start
    while cursor < gap.end:
        steps_from_anchor = (cursor - anchor) // step
        nxt = anchor + (steps_from_anchor + 1) * step
        nxt = min(nxt, gap.end)
        out.append(Piece(cursor, nxt, None))
        cursor = nxt
    return out
