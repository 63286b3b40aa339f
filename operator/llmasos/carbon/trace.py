"""The embedded default source: real, shipped intensity traces replayed as if they were live.

Without an Electricity Maps token the operator still needs realistic, time-varying intensity, so it replays the
series shipped in `llmasos/data/carbon-intensity` (DACF hourly 2020-2021 for five grids, Germany at 15 minutes).
"Now" is mapped onto the trace by a time shift: by default a whole number of 52-week years (weekdays and hours of
day stay aligned), chosen so that now lands inside the trace; a demo can pin any shift. A "forecast" is the future
part of the trace, issued on the hour, optionally blurred by a seeded error model that grows with lead time, so
the planner is never handed perfect knowledge unless a test asks for it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from llmasos.api.clock import Clock, utc_now
from llmasos.carbon.base import Location, Observation
from llmasos.errors import CarbonFailureKind as Kind
from llmasos.errors import CarbonSourceError
from llmasos.planning.timing.carbon_window import REPLAY_SOURCE
from llmasos.planning.timing.forecast import Forecast, ensure_utc, parse_instant
from llmasos.planning.timing.forecast_error import ForecastErrorModel

SOURCE = REPLAY_SOURCE  # "trace": plans on it say "historical replay, not a forecast"
YEAR_52_WEEKS = timedelta(weeks=52)
_FILE = re.compile(r"^ci_(?P<zone>[A-Za-z0-9-]+?)_\d{4}.*\.csv$")


def read_series(text: str, zone: str) -> Forecast:
    """Parse a `timestamp_utc,gco2_per_kwh` CSV into a series; raises ValueError naming the bad line."""
    pairs: list[tuple[datetime, float]] = []
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"timestamp_utc", "gco2_per_kwh"} <= set(reader.fieldnames):
        raise ValueError(f"{zone}: expected columns timestamp_utc,gco2_per_kwh, got {reader.fieldnames}")
    for lineno, row in enumerate(reader, start=2):
        try:
            pairs.append((parse_instant(row["timestamp_utc"]), float(row["gco2_per_kwh"])))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{zone}: line {lineno}: {exc}") from None
    return Forecast.from_pairs(pairs, zone=zone, source=SOURCE)


def shipped_trace_files() -> dict[str, str]:
    """Zone key -> file name of every series shipped in the package."""
    folder = resources.files("llmasos").joinpath("data/carbon-intensity")
    out: dict[str, str] = {}
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            out[match.group("zone")] = entry.name
    return dict(sorted(out.items()))


def load_shipped_series(zone: str) -> Forecast:
    files = shipped_trace_files()
    if zone not in files:
        raise KeyError(f"no shipped trace for zone {zone!r}; available: {', '.join(files)}")
    text = resources.files("llmasos").joinpath(f"data/carbon-intensity/{files[zone]}").read_text("utf-8")
    return read_series(text, zone)


def load_series_file(path: Path, zone: str | None = None) -> Forecast:
    """A series from any CSV in the shipped format (zone taken from the file name when not given)."""
    match = _FILE.match(path.name)
    name = zone or (match.group("zone") if match else path.stem)
    return read_series(path.read_text("utf-8"), name)


class TraceSource:
    """Replays traces as live data. `offset` maps real time to trace time (trace = real + offset); None = automatic.

    `horizon` is how far forecasts reach (24 h like a day-ahead forecast); `issue_every` is how often a new forecast
    is issued (a forecast is stable within that period, so the operator can tell a newer one by `issued_at`).
    """

    def __init__(
        self,
        series: Mapping[str, Forecast] | None = None,
        *,
        clock: Clock = utc_now,
        offset: timedelta | None = None,
        horizon: timedelta = timedelta(hours=24),
        issue_every: timedelta = timedelta(hours=1),
        error_model: ForecastErrorModel | None = None,
    ) -> None:
        self._series: dict[str, Forecast] = dict(series or {})
        self._shipped = series is None
        self._clock = clock
        self._offset = offset
        self.horizon = horizon
        self.issue_every = issue_every
        self.error_model = error_model

    @property
    def name(self) -> str:
        return SOURCE

    def zones(self) -> list[str]:
        return sorted(shipped_trace_files()) if self._shipped else sorted(self._series)

    def series(self, zone: str) -> Forecast:
        """The whole trace for `zone` in trace time (loaded once per source)."""
        if zone not in self._series:
            if not self._shipped:
                raise CarbonSourceError(f"no trace for zone {zone!r}", SOURCE, delay=300, kind=Kind.NO_DATA)
            try:
                self._series[zone] = load_shipped_series(zone)
            except KeyError as exc:
                raise CarbonSourceError(str(exc.args[0]), SOURCE, delay=300, kind=Kind.NO_DATA) from None
        return self._series[zone]

    def offset_for(self, zone: str, now: datetime) -> timedelta:
        """trace time - real time at `now`: the pinned offset, or whole 52-week years landing inside the trace."""
        if self._offset is not None:
            return self._offset
        trace = self.series(zone)
        assert trace.start is not None
        years = (ensure_utc(now) - trace.start) // YEAR_52_WEEKS
        return -years * YEAR_52_WEEKS

    def _trace_now(self, zone: str, now: datetime | None) -> tuple[datetime, timedelta, Forecast]:
        moment = ensure_utc(now) if now is not None else self._clock()
        trace = self.series(zone)
        offset = self.offset_for(zone, moment)
        trace_now = moment + offset
        if trace.start is None or trace.end is None or not trace.start <= trace_now < trace.end:
            raise CarbonSourceError(f"trace for {zone} does not cover now", SOURCE, delay=300, kind=Kind.NO_DATA,
                                    detail=f"covers {trace.start} .. {trace.end}, not {trace_now}, offset {offset}")
        return trace_now, offset, trace

    # -- synchronous API (simulation, benchmark, CLI) ------------------------------------------------------------
    def latest_at(self, zone: str, now: datetime | None = None) -> Observation:
        trace_now, offset, trace = self._trace_now(zone, now)
        value = trace.value_at(trace_now)
        if value is None:
            raise CarbonSourceError(f"trace for {zone} has a gap", SOURCE, kind=Kind.NO_DATA, detail=f"at {trace_now}")
        step_start = _floor(trace_now, trace.step, trace.start or trace_now)
        return Observation(zone, value, step_start - offset, SOURCE, updated_at=step_start - offset)

    def forecast_at(self, zone: str, now: datetime | None = None) -> Forecast:
        """The forecast as issued at the last `issue_every` boundary before now, in real time."""
        trace_now, offset, trace = self._trace_now(zone, now)
        issued = _floor(trace_now, self.issue_every, trace.start or trace_now)
        window = trace.between(_floor(trace_now, trace.step, trace.start or trace_now), issued + self.horizon)
        if self.error_model is not None:
            window = self.error_model.apply(window, issued)
        return window.shifted(-offset).replace_meta(zone=zone, issued_at=issued - offset, source=SOURCE)

    def history_at(self, zone: str, start: datetime, end: datetime, now: datetime | None = None) -> Forecast:
        trace_now, offset, trace = self._trace_now(zone, now)
        end = min(ensure_utc(end), trace_now - offset)
        window = trace.between(ensure_utc(start) + offset, end + offset)
        return window.shifted(-offset).replace_meta(zone=zone, source=SOURCE)

    # -- IntensitySource ---------------------------------------------------------------------------------------
    async def _loaded(self, location: str | Location) -> str:
        zone = _zone(location)
        if zone not in self._series and self._shipped:
            # First use parses a CSV of ~20k rows: keep it off the event loop.
            await asyncio.to_thread(self.series, zone)
        return zone

    async def latest(self, location: str | Location) -> Observation:
        return self.latest_at(await self._loaded(location))

    async def forecast(self, location: str | Location) -> Forecast:
        return self.forecast_at(await self._loaded(location))

    async def history(
        self, location: str | Location, start: datetime | None = None, end: datetime | None = None
    ) -> Forecast:
        zone = await self._loaded(location)
        now = self._clock()
        return self.history_at(zone, start or now - timedelta(hours=24), end or now, now)


def _zone(location: str | Location) -> str:
    loc = Location.parse(location)
    if loc.zone is None:
        raise CarbonSourceError(f"traces are keyed by zone, not coordinates ({loc.key})", SOURCE, delay=300,
                                kind=Kind.NO_DATA)
    return loc.zone


def _floor(moment: datetime, step: timedelta, anchor: datetime) -> datetime:
    return anchor + ((moment - anchor) // step) * step
