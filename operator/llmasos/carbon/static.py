"""The last resort: one annual intensity per country or cloud region, shipped with the package.

When neither Electricity Maps nor a trace can answer, the operator still needs a number to report emissions and
must never block a job. Annual averages carry no timing signal, so the planner given a flat "forecast" simply runs
the job now (ties go to the earliest start), which is the honest choice when nothing better is known.

Keys accepted: an Electricity Maps zone ("DE", "US-CAL-CISO", "SE-SE3": the country prefix is used), an ISO 3166
alpha-3 code ("DEU"), or a cloud region ("gcp:europe-west4", "aws:eu-central-1", "azure:West Europe", or the bare
region name). Data: CodeCarbon's per-country mix (Our World in Data / Ember), Cloud Carbon Footprint's cloud-region
factors, Google's region-carbon-info 2024. Unknown keys get the world average (475 g/kWh, CodeCarbon's fallback)
unless `default_intensity` is None.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from importlib import resources

from llmasos.api.clock import Clock, utc_now
from llmasos.carbon.base import Location, Observation
from llmasos.errors import CarbonFailureKind as Kind
from llmasos.errors import CarbonSourceError
from llmasos.planning.timing.forecast import Forecast, ensure_utc

SOURCE = "static"
WORLD_AVERAGE = 475.0
_DATA = "data/static-intensity"

# ISO 3166 alpha-2 -> alpha-3 for the countries Electricity Maps zones start with (facts, not data from a source).
_ALPHA2_PAIRS = (
    "AE:ARE AR:ARG AT:AUT AU:AUS BA:BIH BD:BGD BE:BEL BG:BGR BR:BRA BY:BLR CA:CAN CH:CHE CL:CHL CN:CHN CO:COL "
    "CR:CRI CY:CYP CZ:CZE DE:DEU DK:DNK DZ:DZA EC:ECU EE:EST EG:EGY ES:ESP FI:FIN FR:FRA GB:GBR GE:GEO GR:GRC "
    "HK:HKG HR:HRV HU:HUN ID:IDN IE:IRL IL:ISR IN:IND IQ:IRQ IR:IRN IS:ISL IT:ITA JP:JPN KE:KEN KR:KOR KW:KWT "
    "KZ:KAZ LT:LTU LU:LUX LV:LVA MA:MAR MD:MDA ME:MNE MK:MKD MT:MLT MX:MEX MY:MYS NG:NGA NL:NLD NO:NOR NZ:NZL "
    "PA:PAN PE:PER PH:PHL PK:PAK PL:POL PT:PRT PY:PRY QA:QAT RO:ROU RS:SRB RU:RUS SA:SAU SE:SWE SG:SGP SI:SVN "
    "SK:SVK TH:THA TN:TUN TR:TUR TW:TWN UA:UKR US:USA UY:URY UZ:UZB VE:VEN VN:VNM ZA:ZAF"
)
_ALPHA2 = {pair[:2]: pair[3:] for pair in _ALPHA2_PAIRS.split()}


def _read(name: str) -> str:
    return resources.files("llmasos").joinpath(f"{_DATA}/{name}").read_text("utf-8")


def _tonnes_to_grams(text: str) -> float:
    """CO2e t/kWh -> g/kWh. Two upstream rows lost their "0." ("000077"): digits with leading zeros mean 0.<digits>."""
    cleaned = text.strip()
    if cleaned.startswith("00") and "." not in cleaned:
        cleaned = "0." + cleaned
    return float(cleaned) * 1e6


def load_shipped_table() -> dict[str, float]:
    """Every key the static source knows, mapped to gCO2e/kWh."""
    table: dict[str, float] = {}
    mix = json.loads(_read("codecarbon/private_infra__global_energy_mix.json"))
    for alpha3, row in mix.items():
        value = row.get("carbon_intensity")
        if isinstance(value, int | float) and value > 0:
            table[alpha3.upper()] = float(value)
    for cloud in ("aws", "azure", "gcp"):
        for row in csv.DictReader(io.StringIO(_read(f"cloud-carbon-coefficients/grid-emissions-factors-{cloud}.csv"))):
            region, value = row.get("Region"), row.get("CO2e (metric ton/kWh)")
            if region and value:
                table[f"{cloud}:{region.strip().lower()}"] = _tonnes_to_grams(value)
    for row in csv.DictReader(io.StringIO(_read("gcp-region-carbon-info/gcp_region_carbon_2024.csv"))):
        region, value = row.get("Google Cloud Region"), row.get("Grid carbon intensity (gCO2eq / kWh)")
        if region and value:
            table[f"gcp:{region.strip().lower()}"] = float(value)  # newer than the CCF table: overrides it
    return table


class StaticSource:
    """Annual values as flat forecasts; `table` maps keys (see module docstring) to gCO2e/kWh."""

    def __init__(
        self,
        table: Mapping[str, float] | None = None,
        *,
        clock: Clock = utc_now,
        horizon: timedelta = timedelta(hours=48),
        default_intensity: float | None = WORLD_AVERAGE,
    ) -> None:
        self._table = dict(table) if table is not None else None
        self._clock = clock
        self.horizon = horizon
        self.default_intensity = default_intensity

    @property
    def name(self) -> str:
        return SOURCE

    @property
    def table(self) -> dict[str, float]:
        if self._table is None:
            self._table = load_shipped_table()
        return self._table

    def lookup(self, key: str) -> tuple[float, str]:
        """(intensity, the key that matched); raises CarbonSourceError for unknown keys without a default."""
        found = self.lookup_or_none(key)
        if found is not None:
            return found
        if self.default_intensity is not None:
            return self.default_intensity, "world-average"
        raise CarbonSourceError(f"no annual intensity for {key!r}", SOURCE, delay=3600, kind=Kind.NO_DATA)

    def lookup_or_none(self, key: str) -> tuple[float, str] | None:
        """(intensity, the key that matched), or None when the table has nothing for `key` (the default aside)."""
        table = self.table
        raw = key.strip()
        candidates = [raw.upper(), raw.lower()]
        if ":" not in raw:
            candidates += [f"{cloud}:{raw.lower()}" for cloud in ("gcp", "aws", "azure")]
            prefix = raw.split("-")[0].upper()
            if prefix in _ALPHA2:
                candidates.append(_ALPHA2[prefix])
        for candidate in candidates:
            if candidate in table:
                return table[candidate], candidate
        return None

    def _value(self, location: str | Location) -> tuple[str, float]:
        loc = Location.parse(location)
        if loc.zone is None:
            if self.default_intensity is None:
                raise CarbonSourceError(f"no annual intensity for coordinates {loc.key}", SOURCE, delay=3600,
                                        kind=Kind.NO_DATA)
            return loc.key, self.default_intensity
        return loc.zone, self.lookup(loc.zone)[0]

    async def latest(self, location: str | Location) -> Observation:
        zone, value = self._value(location)
        now = self._clock().replace(minute=0, second=0, microsecond=0)
        return Observation(zone, value, now, SOURCE, updated_at=None, estimated=True)

    async def forecast(self, location: str | Location) -> Forecast:
        zone, value = self._value(location)
        return flat_forecast(zone, value, self._clock(), self.horizon)

    async def history(
        self, location: str | Location, start: datetime | None = None, end: datetime | None = None
    ) -> Forecast:
        zone, value = self._value(location)
        now = self._clock()
        begin = ensure_utc(start) if start is not None else now - timedelta(hours=24)
        return flat_forecast(zone, value, begin, (ensure_utc(end) if end is not None else now) - begin)


def flat_forecast(zone: str, value: float, start: datetime, horizon: timedelta) -> Forecast:
    """Hourly points at `value` from the hour containing `start` for `horizon`."""
    first = ensure_utc(start).replace(minute=0, second=0, microsecond=0)
    hours = max(int(horizon / timedelta(hours=1)) + 1, 1)
    pairs = [(first + timedelta(hours=i), value) for i in range(hours)]
    return Forecast.from_pairs(pairs, timedelta(hours=1), zone=zone, issued_at=None, source=SOURCE)
