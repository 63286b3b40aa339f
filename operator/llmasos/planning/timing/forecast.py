"""Carbon-intensity series as immutable values: the one shape every source produces and the planner consumes.

A :class:`Forecast` is a sorted run of :class:`IntensityPoint`s, each marking the *start* of a step of fixed length
(5, 15 or 60 minutes in practice). A point's value holds for one step; when the next point starts later than that, the
time in between is a *gap*: unknown, never silently clean. The same type carries real forecasts, measured history and
whole trace files, so the planner, the trace source and the benchmark share one well-tested representation.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# The one time module (api/clock.py); re-exported: the planners take their instants from here with their forecasts.
from llmasos.api.clock import ensure_utc as ensure_utc
from llmasos.api.clock import format_instant as format_instant
from llmasos.api.clock import parse_instant as parse_instant

DEFAULT_STEP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class IntensityPoint:
    """Grid carbon intensity (gCO2e/kWh) from `start` for one step of the series it belongs to."""

    start: datetime
    intensity: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start, "point start"))
        value = float(self.intensity)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"intensity at {self.start.isoformat()} must be a finite number >= 0, got {value!r}")
        object.__setattr__(self, "intensity", value)


@dataclass(frozen=True, slots=True)
class Piece:
    """A stretch of time with one intensity; `intensity` is None where the series has no data."""

    start: datetime
    end: datetime
    intensity: float | None

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Forecast:
    """An intensity series for one zone: points sorted by start, one `step` long each, gaps allowed.

    `issued_at` is when the producer computed it (Electricity Maps' `updatedAt`), so a consumer can tell a newer
    forecast from a re-sent one; `source` names the producer ("electricitymaps", "trace", "static").
    """

    points: tuple[IntensityPoint, ...]
    step: timedelta = DEFAULT_STEP
    zone: str = ""
    issued_at: datetime | None = None
    source: str = ""
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.step <= timedelta(0):
            raise ValueError(f"step must be positive, got {self.step}")
        if self.issued_at is not None:
            object.__setattr__(self, "issued_at", ensure_utc(self.issued_at, "issued_at"))
        starts = tuple(p.start.timestamp() for p in self.points)
        step_s = self.step.total_seconds()
        for i in range(1, len(starts)):
            if starts[i] - starts[i - 1] < step_s - 1e-6:
                raise ValueError(
                    f"points at {self.points[i - 1].start.isoformat()} and {self.points[i].start.isoformat()} are "
                    f"closer than the step {self.step} (unsorted, duplicated or wrong step)"
                )
        object.__setattr__(self, "_starts", starts)

    @classmethod
    def from_pairs(
        cls,
        pairs: Iterable[tuple[datetime, float]],
        step: timedelta | None = None,
        *,
        zone: str = "",
        issued_at: datetime | None = None,
        source: str = "",
    ) -> Forecast:
        """Build from (start, intensity) pairs in any order; `step` defaults to the smallest spacing (1 h alone)."""
        points = sorted((IntensityPoint(t, v) for t, v in pairs), key=lambda p: p.start)
        for a, b in itertools.pairwise(points):
            if a.start == b.start:
                raise ValueError(f"two points start at {a.start.isoformat()}")
        if step is None:
            step = infer_step(points)
        return cls(tuple(points), step, zone=zone, issued_at=issued_at, source=source)

    # -- shape -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.points)

    @property
    def start(self) -> datetime | None:
        return self.points[0].start if self.points else None

    @property
    def end(self) -> datetime | None:
        """End of the last step: the forecast horizon."""
        return self.points[-1].start + self.step if self.points else None

    def has_gaps(self) -> bool:
        step_s = self.step.total_seconds()
        return any(b - a > step_s + 1e-6 for a, b in zip(self._starts, self._starts[1:], strict=False))

    # -- lookups -----------------------------------------------------------------------------------------------
    def value_at(self, moment: datetime) -> float | None:
        """The intensity in force at `moment`, or None when it falls in a gap or outside the series."""
        ts = ensure_utc(moment).timestamp()
        i = bisect_right(self._starts, ts) - 1
        if i < 0 or ts >= self._starts[i] + self.step.total_seconds():
            return None
        return self.points[i].intensity

    def known_mean(self) -> float | None:
        """Time-weighted mean of the known values (every point weighs one step)."""
        if not self.points:
            return None
        return sum(p.intensity for p in self.points) / len(self.points)

    def pieces_between(self, start: datetime | None, end: datetime | None) -> list[Piece]:
        """Cover [start, end) with pieces: one per step overlapped, None-valued pieces for gaps and beyond the edges."""
        if start is None or end is None or end <= start:
            return []
        start, end = ensure_utc(start), ensure_utc(end)
        step = self.step
        out: list[Piece] = []
        cursor = start
        i = max(bisect_right(self._starts, start.timestamp()) - 1, 0)
        while cursor < end and i < len(self.points):
            p_start = self.points[i].start
            p_end = p_start + step
            if p_end <= cursor:
                i += 1
                continue
            if p_start > cursor:
                gap_end = min(p_start, end)
                out.append(Piece(cursor, gap_end, None))
                cursor = gap_end
                continue
            piece_end = min(p_end, end)
            out.append(Piece(cursor, piece_end, self.points[i].intensity))
            cursor = piece_end
            i += 1
        if cursor < end:
            out.append(Piece(cursor, end, None))
        return out

    def mean_between(self, start: datetime, end: datetime) -> float | None:
        """Time-weighted mean over [start, end), or None when any part of it is unknown."""
        pieces = self.pieces_between(start, end)
        if not pieces or any(p.intensity is None for p in pieces):
            return None
        total = sum(p.seconds for p in pieces)
        return sum(p.seconds * (p.intensity or 0.0) for p in pieces) / total

    # -- derived series ----------------------------------------------------------------------------------------
    def between(self, start: datetime, end: datetime) -> Forecast:
        """The points whose steps overlap [start, end), keeping step and metadata."""
        lo = max(bisect_right(self._starts, ensure_utc(start).timestamp()) - 1, 0)
        if lo < len(self._starts) and self._starts[lo] + self.step.total_seconds() <= start.timestamp():
            lo += 1
        hi = bisect_right(self._starts, ensure_utc(end).timestamp() - 1e-6)
        return Forecast(self.points[lo:hi], self.step, zone=self.zone, issued_at=self.issued_at, source=self.source)

    def shifted(self, delta: timedelta) -> Forecast:
        """The same series moved by `delta` (maps a trace onto "now"; issued_at moves with it)."""
        issued = self.issued_at + delta if self.issued_at is not None else None
        pts = tuple(IntensityPoint(p.start + delta, p.intensity) for p in self.points)
        return Forecast(pts, self.step, zone=self.zone, issued_at=issued, source=self.source)

    def with_values(self, values: Sequence[float]) -> Forecast:
        """The same timestamps with other values (used by error models)."""
        if len(values) != len(self.points):
            raise ValueError(f"expected {len(self.points)} values, got {len(values)}")
        pts = tuple(IntensityPoint(p.start, v) for p, v in zip(self.points, values, strict=True))
        return Forecast(pts, self.step, zone=self.zone, issued_at=self.issued_at, source=self.source)

    def replace_meta(
        self, *, zone: str | None = None, issued_at: datetime | None = None, source: str | None = None
    ) -> Forecast:
        return Forecast(
            self.points,
            self.step,
            zone=self.zone if zone is None else zone,
            issued_at=self.issued_at if issued_at is None else issued_at,
            source=self.source if source is None else source,
        )


def infer_step(points: Sequence[IntensityPoint]) -> timedelta:
    """The smallest positive spacing between consecutive points (1 h for fewer than two points)."""
    gaps = [(b.start - a.start) for a, b in itertools.pairwise(points) if b.start > a.start]
    return min(gaps) if gaps else DEFAULT_STEP
