"""A seeded model of forecast error, so trace-driven forecasts are as imperfect as real ones.

Real day-ahead carbon-intensity forecasts are right about the hour in progress and increasingly wrong further
out; their errors are correlated in time (too high at 14:00 means probably too high at 15:00), and successive
issues of a forecast revise it gradually rather than redrawing it (the 15:00 value issued at 10:00 and at 11:00
are nearly the same). The model multiplies each value by (1 + sigma(lead) * z), where sigma grows with the square
root of the lead time and z is a unit-variance Gaussian process with a correlation time of a few hours, made of two
parts: one fixed per *target* time (shared by every issue, so revisions are smooth) and one redrawn per issue
(`revision_share` of the variance). The same seed and issue time always give the same forecast.

How big the error is depends on the grid, so `DAY_AHEAD_SIGMA` holds per-zone values measured on real published
day-ahead forecasts (DACF, see its comment); docs/carbon.md compares the model's structure with those forecasts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from llmasos.planning.timing.forecast import Forecast, ensure_utc

_COMPONENTS = 32

# sigma_at_24h per zone, measured on DACF's published day-ahead carbon-intensity forecasts (Maji, Sitaraman, Shenoy,
# e-Energy 2022; github.com/carbonfirst/DACF at bde62273, data/<R>/<R>_carbon_from_src_prod_forecasts_direct.csv,
# 2021-07-01..2021-12-31, 4416 hours each, actuals identical to the shipped series). DACF issues at 00:00 UTC for
# the day, so hour h has lead h; sigma_at_24h is set so that this model's mean absolute percentage error over leads
# 0-23 h equals DACF's measured MAPE: sigma = MAPE / (sqrt(2/pi) * mean_h sqrt(h/24)) = MAPE / 0.514.
# Measured MAPE: DE 9.08 % (DACF's DE series: direct factors, 2021; the shipped DE series is lifecycle, 2020),
# SE 6.47 %, US-CAL-CISO 7.41 %, US-MIDA-PJM 3.30 %, US-NE-ISNE 4.44 %, US-TEX-ERCO 8.05 %.
DAY_AHEAD_SIGMA: dict[str, float] = {
    "DE": 0.177,
    "SE": 0.126,
    "US-CAL-CISO": 0.144,
    "US-MIDA-PJM": 0.064,
    "US-NE-ISNE": 0.086,
    "US-TEX-ERCO": 0.157,
}


@dataclass(frozen=True)
class ForecastErrorModel:
    """`sigma_at_24h`: relative standard deviation of the error 24 h ahead; 0 gives a perfect forecast."""

    sigma_at_24h: float = 0.10
    correlation: timedelta = timedelta(hours=6)
    revision_share: float = 0.2
    seed: int = 0
    _waves: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.sigma_at_24h < 0:
            raise ValueError("sigma_at_24h must be >= 0")
        if self.correlation <= timedelta(0):
            raise ValueError("correlation must be positive")
        if not 0.0 <= self.revision_share <= 1.0:
            raise ValueError("revision_share must be within 0..1")
        # Random Fourier features of an exponential covariance exp(-|dt|/tau): Cauchy frequencies, uniform phases.
        rng = random.Random(f"target:{self.seed}")
        tau = self.correlation.total_seconds()
        waves = tuple(
            (math.tan(math.pi * (rng.random() - 0.5)) / tau, rng.uniform(0, 2 * math.pi)) for _ in range(_COMPONENTS)
        )
        object.__setattr__(self, "_waves", waves)

    def sigma(self, lead: timedelta) -> float:
        """Relative error spread at `lead` ahead of the issue time (0 for the step in progress)."""
        hours = max(lead.total_seconds(), 0.0) / 3600.0
        return self.sigma_at_24h * math.sqrt(hours / 24.0)

    def target_noise(self, moment: datetime) -> float:
        """The part of the error fixed per target time: a unit-variance stationary process."""
        t = ensure_utc(moment).timestamp()
        return math.sqrt(2.0 / _COMPONENTS) * sum(math.cos(w * t + phase) for w, phase in self._waves)

    def apply(self, truth: Forecast, issued_at: datetime) -> Forecast:
        """`truth` as a forecaster would have predicted it at `issued_at` (deterministic in seed and issue time)."""
        issued_at = ensure_utc(issued_at)
        if self.sigma_at_24h == 0 or not truth.points:
            return truth.replace_meta(issued_at=issued_at)
        rng = random.Random(f"{self.seed}:{int(issued_at.timestamp())}")
        phi = math.exp(-truth.step / self.correlation)
        fixed, fresh = math.sqrt(1.0 - self.revision_share), math.sqrt(self.revision_share)
        z = rng.gauss(0.0, 1.0)
        values: list[float] = []
        previous = truth.points[0].start
        for point in truth.points:
            if point.start > previous:
                decay = phi ** ((point.start - previous) / truth.step)
                z = decay * z + math.sqrt(1.0 - decay * decay) * rng.gauss(0.0, 1.0)
            previous = point.start
            noise = fixed * self.target_noise(point.start) + fresh * z
            values.append(max(point.intensity * (1.0 + self.sigma(point.start - issued_at) * noise), 0.0))
        return truth.with_values(values).replace_meta(issued_at=issued_at)
