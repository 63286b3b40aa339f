"""Carbon accounting for `LLMJob.status.carbon`: measured energy integrated against a time-varying grid intensity.

Why an integral and not energy x average intensity: a job that runs from 01:00 to 05:00 on a grid that is clean
at night and dirty at dawn is charged for *when* it drew its energy. The agents report cumulative energy per pod
at irregular times; between two readings the power is taken as constant, so each reading interval's energy is
spread uniformly over its run time and split wherever the intensity series or the PUE steps:

    gCO2e = sum over pieces p of  E_p[kWh] x PUE(t_p) x I(t_p)[g/kWh]

* Run spans: when the caller knows when the pods really ran (suspended segments of an interruptible job), energy of
  a reading interval that straddles a pause goes into the running parts only. Default: the union of the intervals.
* Gaps in the series (unknown intensity) are never free: they are valued at `gap_intensity` (e.g. the zone's annual
  static factor) or, without one, at the energy-weighted mean of the known part of the same integral, and the
  result is marked estimated. No known value at all and no fallback raises :class:`AccountingError`.
* Run-now counterfactual: the same energy profile, pauses removed, started at submission time, valued on the same
  series and PUE schedule; `savedGCO2e = runNowGCO2e - gCO2e` (negative when waiting made it worse: we say so).
* Every time is UTC-aware (naive datetimes raise); local-time inputs across a DST change give the same answer.

Pure: no clock, no I/O. The handler passes the series (history of the zone covering submission .. now), the
intervals; planning/accounting/carbon_status.py turns the results into `status.carbon`.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from llmasos.planning.timing.carbon_window import Segment
from llmasos.planning.timing.forecast import Forecast, ensure_utc

JOULES_PER_KWH = 3.6e6


class AccountingError(ValueError):
    """The inputs cannot give an honest number (no intensity at all, readings before the start, bad values)."""


def finite_nonneg(value: float, what: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise AccountingError(f"{what} must be a finite number >= 0, got {value!r}")
    return v


@dataclass(frozen=True, slots=True)
class EnergyInterval:
    """IT energy (joules) drawn during [start, end), spread uniformly over it (constant power between readings)."""

    start: datetime
    end: datetime
    joules: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", ensure_utc(self.start, "interval start"))
        object.__setattr__(self, "end", ensure_utc(self.end, "interval end"))
        if self.end <= self.start:
            raise AccountingError(f"interval {self.start.isoformat()}..{self.end.isoformat()} is empty")
        object.__setattr__(self, "joules", finite_nonneg(self.joules, "interval energy"))


@dataclass(frozen=True, slots=True)
class EnergyReading:
    """A pod's cumulative energy (joules) as reported at `at` (the node report's time)."""

    at: datetime
    joules: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", ensure_utc(self.at, "reading time"))
        object.__setattr__(self, "joules", finite_nonneg(self.joules, "reading energy"))


def intervals_from_readings(start: datetime, readings: Iterable[EnergyReading]) -> tuple[EnergyInterval, ...]:
    """One pod's cumulative readings -> intervals, the first from `start` (when the pod began drawing energy).

    A reading lower than the previous one is a reset (a new meter): its value is the energy since the reset. Two
    readings at the same time keep the larger; zero-energy intervals are dropped (they mark pauses, see
    :func:`default_run_spans`). Call it per pod and concatenate: per-pod totals never fall, a job's sum may when an
    old pod leaves the node report.
    """
    prev_at, prev_j = ensure_utc(start, "start"), 0.0
    out: list[EnergyInterval] = []
    for r in sorted(readings, key=lambda r: r.at):
        if r.at < prev_at:
            raise AccountingError(f"reading at {r.at.isoformat()} is before the start {prev_at.isoformat()}")
        delta = r.joules - prev_j if r.joules >= prev_j else r.joules
        if r.at == prev_at:
            if out and out[-1].end == r.at and r.joules > prev_j:
                last = out.pop()
                out.append(EnergyInterval(last.start, last.end, last.joules + r.joules - prev_j))
                prev_j = r.joules
            continue  # at the start itself: the next interval carries the difference
        if delta > 0:
            out.append(EnergyInterval(prev_at, r.at, delta))
        prev_at, prev_j = r.at, r.joules
    return tuple(out)


def compact_intervals(
    intervals: Iterable[EnergyInterval], resolution: timedelta = timedelta(minutes=5)
) -> tuple[EnergyInterval, ...]:
    """Merge many pods' intervals into at most one per `resolution` cell of the UTC grid (energy split pro rata).

    Why: a week-long 64-pod job reports ~650,000 pod-minutes; the integral only needs energy per cell. A cell keeps
    the tight extent of what it merged (pauses longer than a cell survive). `emissions` is unchanged whenever the
    intensity and PUE steps lie on the grid (5/15/60-minute series, hourly PUE); run-now moves by less than a cell.
    """
    step = resolution.total_seconds()
    if step <= 0:
        raise AccountingError("resolution must be positive")
    cells: dict[int, list[float]] = {}  # cell index -> [joules, first start, last end] (Unix seconds)
    for iv in intervals:
        a, b = iv.start.timestamp(), iv.end.timestamp()
        per_s = iv.joules / (b - a)
        k = math.floor(a / step)
        while k * step < b:
            lo, hi = max(a, k * step), min(b, (k + 1) * step)
            if hi > lo:
                cell = cells.setdefault(k, [0.0, hi, lo])
                cell[0] += per_s * (hi - lo)
                cell[1], cell[2] = min(cell[1], lo), max(cell[2], hi)
            k += 1
    return tuple(
        EnergyInterval(datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC), joules)
        for _, (joules, lo, hi) in sorted(cells.items())
    )


@dataclass(frozen=True)
class PueSchedule:
    """PUE as a step function: each (since, value) holds from `since` until the next; the first also holds before."""

    steps: tuple[tuple[datetime, float], ...]
    _times: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.steps:
            raise AccountingError("a PUE schedule needs at least one value")
        steps = tuple(sorted(((ensure_utc(t, "PUE step"), float(v)) for t, v in self.steps), key=lambda s: s[0]))
        for t, v in steps:
            if not math.isfinite(v) or v < 1.0:
                raise AccountingError(f"PUE at {t.isoformat()} must be >= 1.0, got {v!r}")
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "_times", tuple(t.timestamp() for t, _ in steps))

    @classmethod
    def constant(cls, value: float) -> PueSchedule:
        return cls(((datetime(1970, 1, 1, tzinfo=UTC), value),))

    def value_at(self, moment: datetime) -> float:
        i = max(bisect.bisect_right(self._times, moment.timestamp()) - 1, 0)
        return self.steps[i][1]

    def changes_inside(self, start: datetime, end: datetime) -> list[datetime]:
        return [t for t, _ in self.steps if start < t < end]


def as_pue(pue: float | PueSchedule) -> PueSchedule:
    return pue if isinstance(pue, PueSchedule) else PueSchedule.constant(pue)


@dataclass(frozen=True)
class Integral:
    """Result of one integral: IT and facility energy (J), grams, and how much energy fell into intensity gaps."""

    energy_j: float
    facility_j: float
    grams: float
    gap_energy_j: float = 0.0

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / JOULES_PER_KWH

    @property
    def facility_kwh(self) -> float:
        return self.facility_j / JOULES_PER_KWH

    @property
    def average_intensity(self) -> float | None:
        """gCO2e per facility kWh: the energy-weighted grid intensity the job actually met; None without energy."""
        return self.grams / self.facility_kwh if self.facility_j > 0 else None

    @property
    def estimated_fraction(self) -> float:
        return self.gap_energy_j / self.energy_j if self.energy_j > 0 else 0.0


Piece = tuple[datetime, datetime, float]  # [start, end), joules


def merge_spans(spans: Iterable[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for s in sorted(spans, key=lambda s: s.start):
        start, end = ensure_utc(s.start, "span start"), ensure_utc(s.end, "span end")
        if end <= start:
            continue
        if out and start <= out[-1].end:
            out[-1] = Segment(out[-1].start, max(out[-1].end, end))
        else:
            out.append(Segment(start, end))
    return out


def default_run_spans(intervals: Iterable[EnergyInterval]) -> list[Segment]:
    """When the job ran, as the energy says: the union of intervals that drew energy."""
    return merge_spans(Segment(i.start, i.end) for i in intervals if i.joules > 0)


def _place(intervals: Iterable[EnergyInterval], spans: Sequence[Segment]) -> list[Piece]:
    """Each interval's energy over the parts of it inside run spans; an interval outside every span keeps its own."""
    out: list[Piece] = []
    for iv in intervals:
        parts = [(max(iv.start, s.start), min(iv.end, s.end)) for s in spans if s.start < iv.end and iv.start < s.end]
        covered = sum((b - a).total_seconds() for a, b in parts)
        if covered <= 0:
            out.append((iv.start, iv.end, iv.joules))
            continue
        out.extend((a, b, iv.joules * (b - a).total_seconds() / covered) for a, b in parts)
    return out


def _integrate(pieces: Iterable[Piece], series: Forecast, pue: PueSchedule, gap_intensity: float | None) -> Integral:
    energy = facility = known_grams = gap_it = gap_facility = 0.0
    for a, b, joules in pieces:
        total = (b - a).total_seconds()
        for piece in series.pieces_between(a, b):
            cuts = [piece.start, *pue.changes_inside(piece.start, piece.end), piece.end]
            for lo, hi in itertools.pairwise(cuts):
                j = joules * (hi - lo).total_seconds() / total
                fac = j * pue.value_at(lo)
                energy += j
                facility += fac
                if piece.intensity is None:
                    gap_it += j
                    gap_facility += fac
                else:
                    known_grams += fac / JOULES_PER_KWH * piece.intensity
    if gap_facility > 0:
        fill = gap_intensity
        if fill is None and facility > gap_facility:
            fill = known_grams / ((facility - gap_facility) / JOULES_PER_KWH)
        if fill is None:
            raise AccountingError(
                f"no intensity known for the run in series {series.zone or '?'} ({series.source or '?'}) and no "
                "gap intensity given"
            )
        known_grams += gap_facility / JOULES_PER_KWH * finite_nonneg(fill, "gap intensity")
    return Integral(energy, facility, known_grams, gap_it)


def emissions(
    intervals: Sequence[EnergyInterval],
    series: Forecast,
    pue: float | PueSchedule,
    *,
    run_spans: Sequence[Segment] | None = None,
    gap_intensity: float | None = None,
) -> Integral:
    """The actual run's energy and gCO2e: energy of each interval x intensity x PUE, piece by piece."""
    spans = merge_spans(run_spans) if run_spans is not None else default_run_spans(intervals)
    return _integrate(_place(intervals, spans), series, as_pue(pue), gap_intensity)


def run_now_emissions(
    intervals: Sequence[EnergyInterval],
    series: Forecast,
    pue: float | PueSchedule,
    submitted_at: datetime,
    *,
    run_spans: Sequence[Segment] | None = None,
    gap_intensity: float | None = None,
) -> Integral:
    """gCO2e had the same energy profile run straight through from `submitted_at` (pauses removed), same series."""
    submitted = ensure_utc(submitted_at, "submission time")
    spans = merge_spans(run_spans) if run_spans is not None else default_run_spans(intervals)
    pieces = _place(intervals, spans)
    if not pieces:
        return Integral(0.0, 0.0, 0.0)
    first = min([p[0] for p in pieces] + [s.start for s in spans])
    submitted = min(submitted, first)
    offsets: list[timedelta] = []  # shift of each span: its start minus where it would start in a straight run
    ran = timedelta(0)
    for s in spans:
        offsets.append(s.start - (submitted + ran))
        ran += s.end - s.start
    mapped: list[Piece] = []
    for a, b, joules in pieces:
        k = next((i for i, s in enumerate(spans) if s.start <= a and b <= s.end), None)
        shift = offsets[k] if k is not None else first - submitted
        mapped.append((a - shift, b - shift, joules))
    return _integrate(mapped, series, as_pue(pue), gap_intensity)


def savings(actual_grams: float, run_now_grams: float) -> tuple[float, float | None]:
    """(savedGCO2e, savedPercent): run-now minus actual, and that as a percentage of run-now (None when 0)."""
    saved = run_now_grams - actual_grams
    return saved, (100.0 * saved / run_now_grams if run_now_grams > 0 else None)


@dataclass(frozen=True)
class CapRecord:
    """One capped worker pod: its measured IT energy, the cap, the GPU default, and how the uncapped energy is known.

    `slowdown` = run time at the cap / run time uncapped (>= 1), as energyOptimal measures it. `capped_power_w` is
    the average power while capped (default: the cap, since a capped GPU runs at its limit); `uncapped_power_w` what
    it would draw uncapped (default: the GPU's default limit, what a busy training GPU draws within ~10 %).
    Without a measured slowdown (limit/fraction policies), `energy_ratio` = E_uncapped / E_capped for the same work,
    from the measured power-limit curves (planning/accounting/power_cap.py); with neither, no saving is claimed.
    """

    energy_j: float
    limit_w: float | None
    default_w: float
    slowdown: float | None
    capped_power_w: float | None = None
    uncapped_power_w: float | None = None
    energy_ratio: float | None = None


def power_cap_saved_kwh(records: Iterable[CapRecord]) -> float:
    """Estimated IT energy saved by power caps against the uncapped profile, in kWh.

    Same work: capped it took T at power Pc (E = Pc T); uncapped it would take T / s at power Pu, so
    E_uncapped = E x Pu / (Pc x s) and the saving is E_uncapped - E (negative when the cap cost energy). Without a
    measured slowdown, E_uncapped = E x energy_ratio (the curves' energy per work at the default over at the cap).
    """
    saved = 0.0
    for r in records:
        if r.limit_w is None or r.limit_w >= r.default_w or r.energy_j <= 0:
            continue
        if r.slowdown is None:
            if r.energy_ratio is not None:
                saved += r.energy_j * (finite_nonneg(r.energy_ratio, "energy ratio") - 1.0)
            continue
        if r.slowdown < 1.0 - 1e-9:
            raise AccountingError(f"slowdown must be >= 1 (run time capped / uncapped), got {r.slowdown}")
        capped = r.capped_power_w if r.capped_power_w else r.limit_w
        uncapped = r.uncapped_power_w if r.uncapped_power_w else r.default_w
        saved += r.energy_j * uncapped / (capped * r.slowdown) - r.energy_j
    return saved / JOULES_PER_KWH


def pool_choice_saved_grams(actual_grams: float, chosen_expected_g: float, baseline_expected_g: float) -> float:
    """Saving from the pool choice, scaled to what really happened: actual x (baseline / chosen expected - 1).

    `baseline_expected_g` is the planner's expectation on the pool a carbon-blind scheduler would have used (the
    first listed that fits), `chosen_expected_g` on the chosen one, both from the same plan pass.
    """
    if chosen_expected_g <= 0:
        return 0.0
    return actual_grams * (baseline_expected_g / chosen_expected_g - 1.0)
