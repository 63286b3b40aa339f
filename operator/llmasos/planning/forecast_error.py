"""A seeded model of forecast error, so trace-driven forecasts are as imperfect as real ones.

Real day-ahead carbon-intensity forecasts are right about the next hour and increasingly wrong further out, and
their errors are correlated in time (a forecast that is too high at 14:00 is probably too high at 15:00 as well).
The model multiplies each future value by (1 + sigma(lead) * z), where sigma grows with the square root of the lead
time (a random walk's spread) and z is a unit-variance AR(1) series with a correlation time of a few hours.
DACF (Maji et al., e-Energy 2022) reports day-ahead MAPEs of roughly 5-15 % for the shipped regions; the default of
10 % relative standard deviation at 24 h sits in that range. The same seed and issue time give the same forecast.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmasos.planning.forecast import Forecast, ensure_utc

DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class ForecastErrorModel:
    """`sigma_at_24h`: relative standard deviation of the error 24 h ahead; 0 gives a perfect forecast."""

    sigma_at_24h: float = 0.10
    correlation: timedelta = timedelta(hours=6)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sigma_at_24h < 0:
            raise ValueError("sigma_at_24h must be >= 0")
        if self.correlation <= timedelta(0):
            raise ValueError("correlation must be positive")

    def sigma(self, lead: timedelta) -> float:
        """Relative error spread at `lead` ahead of the issue time (0 for the step in progress)."""
        hours = max(lead.total_seconds(), 0.0) / 3600.0
        return self.sigma_at_24h * math.sqrt(hours / 24.0)

    def apply(self, truth: Forecast, issued_at: datetime) -> Forecast:
        """`truth` as a forecaster would have predicted it at `issued_at` (deterministic in seed and issue time)."""
        issued_at = ensure_utc(issued_at)
        if self.sigma_at_24h == 0 or not truth.points:
            return truth.replace_meta(issued_at=issued_at)
        rng = random.Random(f"{self.seed}:{int(issued_at.timestamp())}")
        phi = math.exp(-truth.step / self.correlation)
        z = rng.gauss(0.0, 1.0)
        values: list[float] = []
        previous = truth.points[0].start
        for point in truth.points:
            if point.start > previous:
                decay = phi ** ((point.start - previous) / truth.step)
                z = decay * z + math.sqrt(1.0 - decay * decay) * rng.gauss(0.0, 1.0)
            previous = point.start
            values.append(max(point.intensity * (1.0 + self.sigma(point.start - issued_at) * z), 0.0))
        return truth.with_values(values).replace_meta(issued_at=issued_at)
