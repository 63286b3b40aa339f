"""The one Protocol every carbon-intensity source implements, and the values they return.

The operator depends on this shape only, so a source can be swapped (Electricity Maps with a token, the shipped
traces without one, static annual values as the last resort) and tests can pass a fake. Sources are async because
the real one does HTTP; the offline ones answer immediately. Every failure is a :class:`CarbonSourceError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from llmasos.api.clock import ensure_utc
from llmasos.planning.timing.forecast import Forecast

_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")


def normalize_zone(key: str) -> str:
    """ "de" -> "DE", " us-cal-ciso " -> "US-CAL-CISO", "GCP:Europe-West4" -> "gcp:europe-west4"."""
    key = key.strip()
    if ":" in key:
        cloud, region = key.split(":", 1)
        return f"{cloud.strip().lower()}:{region.strip().lower()}"
    return key.upper()



@dataclass(frozen=True, slots=True)
class Location:
    """Where intensity is wanted: an Electricity Maps zone key ("DE", "US-CAL-CISO") or a latitude/longitude."""

    zone: str | None = None
    lat: float | None = None
    lon: float | None = None

    def __post_init__(self) -> None:
        if self.zone is None:
            if self.lat is None or self.lon is None:
                raise ValueError("a location needs a zone or both lat and lon")
            if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180) or not math.isfinite(self.lat + self.lon):
                raise ValueError(f"lat/lon out of range: {self.lat}, {self.lon}")
        elif not self.zone.strip():
            raise ValueError("zone must not be empty")
        else:  # the one place zone keys are normalised: "de" and "DE" are the same zone everywhere
            object.__setattr__(self, "zone", normalize_zone(self.zone))

    @classmethod
    def parse(cls, text: str | Location) -> Location:
        """ "DE" -> zone; "52.52,13.40" -> lat/lon."""
        if isinstance(text, Location):
            return text
        match = _LATLON.match(text)
        if match:
            return cls(lat=float(match.group(1)), lon=float(match.group(2)))
        return cls(zone=text)

    @property
    def key(self) -> str:
        """A stable string for caches and messages."""
        return self.zone if self.zone is not None else f"{self.lat:.4f},{self.lon:.4f}"


@dataclass(frozen=True, slots=True)
class Observation:
    """One intensity value (gCO2e/kWh) for the hour starting at `at`, as reported at `updated_at`."""

    zone: str
    intensity: float
    at: datetime
    source: str
    updated_at: datetime | None = None
    estimated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", ensure_utc(self.at, "observation time"))
        if self.updated_at is not None:
            object.__setattr__(self, "updated_at", ensure_utc(self.updated_at, "updatedAt"))


@runtime_checkable
class IntensitySource(Protocol):
    """A carbon-intensity source. `location` is a zone key, "lat,lon", or a :class:`Location`."""

    @property
    def name(self) -> str: ...

    async def latest(self, location: str | Location) -> Observation:
        """The most recent value; raises CarbonSourceError when missing, null or stale."""
        ...

    async def forecast(self, location: str | Location) -> Forecast:
        """Future intensity from now on, with `issued_at` and `source` set; raises CarbonSourceError."""
        ...

    async def history(
        self, location: str | Location, start: datetime | None = None, end: datetime | None = None
    ) -> Forecast:
        """Past intensity over [start, end) (the last 24 h by default); raises CarbonSourceError."""
        ...
