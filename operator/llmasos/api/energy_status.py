"""`status.carbon` and `status.power` as typed values: read once per pass, rendered once, as the JSON written before.

The accounting (planning/accounting) builds these, the metrics read their numbers, and the pass renders them into
the one status it writes (`to_status`). Rendering writes the same keys, in the same order, with the same values as
the dicts they replace, so the CRD schema (api/status_schema.py), kubectl's printer columns (status.carbon.display),
`llmasos report` and the dashboards read exactly what they read before.

Every field may be missing from what an older operator wrote, so a field read from status is None when absent and
is left out again when rendered; keys this version does not know are kept (`extra`), so an older operator never
drops what a newer one wrote. Numbers are kept as read (an integer stays an integer), so `read(x).to_status() == x`.
Times that the operator writes itself (the ledger's) are instants; the node agents' `readAt`/`reportedAt` stay the
text the agents wrote (compared as text, newest wins, and copied verbatim).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from llmasos.api.clock import format_instant, parse_instant, parse_instant_or_none


def number(value: object) -> float | None:
    """A status number as read (an int stays an int, so it renders as it was read); None when absent or not a number
    (a boolean, or text that is no number: nothing this operator writes)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(str(value))
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _render(pairs: Iterable[tuple[str, Any]], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The status object: the known keys in their order (None left out), then the keys kept from a newer writer."""
    out = {key: value for key, value in pairs if value is not None}
    out.update(extra)
    return out


def _extra(raw: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    names = set(known)
    return {k: v for k, v in raw.items() if k not in names}


# --- status.carbon ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offset:
    """status.carbon.offset: tonnes CO2e, and what offsetting them costs (cost and currency only when priced)."""

    tonnes: float | None = None
    cost: float | None = None
    currency: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[tuple[str, ...]] = ("tonnes", "cost", "currency")

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> Offset:
        return cls(number(raw.get("tonnes")), number(raw.get("cost")), _text(raw.get("currency")),
                   _extra(raw, cls.KEYS))

    def to_status(self) -> dict[str, Any]:
        return _render(zip(self.KEYS, (self.tonnes, self.cost, self.currency), strict=True), self.extra)


@dataclass(frozen=True)
class CarbonDisplay:
    """status.carbon.display: energy, emissions and saving scaled for people ("1.2 kWh", "340 g"): kubectl's columns."""

    energy: str | None = None
    emissions: str | None = None
    saved: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[tuple[str, ...]] = ("energy", "emissions", "saved")

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> CarbonDisplay:
        return cls(_text(raw.get("energy")), _text(raw.get("emissions")), _text(raw.get("saved")),
                   _extra(raw, cls.KEYS))

    def to_status(self) -> dict[str, Any]:
        return _render(zip(self.KEYS, (self.energy, self.emissions, self.saved), strict=True), self.extra)


@dataclass(frozen=True)
class LedgerCell:
    """Energy metered in [start, end) (joules), one row of status.carbon.ledger.intervals."""

    start: datetime
    end: datetime
    joules: float


@dataclass(frozen=True)
class LedgerReading:
    """A pod's last cumulative energy reading (joules at `at`): where its next interval starts."""

    at: datetime
    joules: float


@dataclass(frozen=True)
class CarbonLedger:
    """status.carbon.ledger: the energy intervals (compacted to 5-minute cells) and each pod's last reading. Kept in
    status so the time-varying integral survives an operator restart (planning/accounting/energy_ledger.py)."""

    intervals: tuple[LedgerCell, ...] = ()
    readings: Mapping[str, LedgerReading] = field(default_factory=dict)

    @classmethod
    def read(cls, raw: object) -> CarbonLedger | None:
        if isinstance(raw, CarbonLedger):
            return raw
        if not isinstance(raw, Mapping):
            return None
        rows = raw.get("intervals") or ()
        readings = raw.get("readings") or {}
        return cls(
            tuple(LedgerCell(parse_instant(str(a), "status.carbon.ledger.intervals[]"),
                             parse_instant(str(b), "status.carbon.ledger.intervals[]"), float(j)) for a, b, j in rows),
            {str(name): LedgerReading(parse_instant(str(at), "status.carbon.ledger.readings"), float(j))
             for name, (at, j) in readings.items()},
        )

    def to_status(self) -> dict[str, Any]:
        return {
            "intervals": [[format_instant(c.start), format_instant(c.end), c.joules] for c in self.intervals],
            "readings": {name: [format_instant(r.at), r.joules] for name, r in self.readings.items()},
        }


@dataclass(frozen=True)
class CarbonStatus:
    """LLMJob status.carbon (its fields are documented in api/status_schema.py and docs/observability.md)."""

    energy_kwh: float | None = None
    facility_energy_kwh: float | None = None
    grams: float | None = None  # gCO2e
    average_intensity: float | None = None
    run_now_grams: float | None = None
    saved_grams: float | None = None
    saved_percent: float | None = None
    power_cap_saved_kwh: float | None = None
    method: str | None = None
    emission_factor_type: str | None = None
    source: str | None = None
    is_estimated: bool | None = None
    offset: Offset | None = None
    display: CarbonDisplay | None = None
    tokens: float | None = None
    joules_per_token: float | None = None
    pool_choice_saved_grams: float | None = None
    ledger: CarbonLedger | None = None
    updated_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    # The status key of each field, in the order they are written.
    KEYS: ClassVar[dict[str, str]] = {
        "energy_kwh": "energyKWh", "facility_energy_kwh": "facilityEnergyKWh", "grams": "gCO2e",
        "average_intensity": "averageIntensity", "run_now_grams": "runNowGCO2e", "saved_grams": "savedGCO2e",
        "saved_percent": "savedPercent", "power_cap_saved_kwh": "powerCapSavedKWh", "method": "method",
        "emission_factor_type": "emissionFactorType", "source": "source", "is_estimated": "isEstimated",
        "offset": "offset", "display": "display", "tokens": "tokens", "joules_per_token": "joulesPerToken",
        "pool_choice_saved_grams": "poolChoiceSavedGCO2e", "ledger": "ledger", "updated_at": "updatedAt",
    }
    NUMBERS: ClassVar[tuple[str, ...]] = (
        "energy_kwh", "facility_energy_kwh", "grams", "average_intensity", "run_now_grams", "saved_grams",
        "saved_percent", "power_cap_saved_kwh", "tokens", "joules_per_token", "pool_choice_saved_grams")

    @classmethod
    def read(cls, raw: object) -> CarbonStatus | None:
        """status.carbon as read (None when there is none)."""
        if isinstance(raw, CarbonStatus):
            return raw
        if not isinstance(raw, Mapping) or not raw:
            return None
        k = cls.KEYS
        values: dict[str, Any] = {name: number(raw.get(k[name])) for name in cls.NUMBERS}
        estimated = raw.get("isEstimated")
        offset, display = raw.get("offset"), raw.get("display")
        return cls(
            **values,
            method=_text(raw.get("method")),
            emission_factor_type=_text(raw.get("emissionFactorType")),
            source=_text(raw.get("source")),
            is_estimated=None if estimated is None else bool(estimated),
            offset=Offset.read(offset) if isinstance(offset, Mapping) else None,
            display=CarbonDisplay.read(display) if isinstance(display, Mapping) else None,
            ledger=CarbonLedger.read(raw.get("ledger")),
            updated_at=parse_instant_or_none(raw.get("updatedAt")),  # unreadable: as if never written (written again)
            extra=_extra(raw, k.values()),
        )

    def to_status(self) -> dict[str, Any]:
        """The JSON object to write to status.carbon."""

        def rendered(name: str) -> Any:
            value = getattr(self, name)
            if isinstance(value, datetime):
                return format_instant(value)
            return value.to_status() if isinstance(value, Offset | CarbonDisplay | CarbonLedger) else value

        return _render(((key, rendered(name)) for name, key in self.KEYS.items()), self.extra)

    def comparable(self) -> CarbonStatus:
        """This object without its write time: two passes that found the same numbers compare equal."""
        return CarbonStatus(**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "updated_at"})


# --- status.power -----------------------------------------------------------------------------------------------------

ENDED = "Ended"  # status.power.pods[].state of a pod whose containers have ended (the node agent's word)


@dataclass(frozen=True)
class PodPower:
    """One worker pod in status.power.pods, as its node agent last reported it."""

    pod: str
    node: str | None = None
    gpus: tuple[str, ...] | None = None
    policy: str | None = None
    limit_watts: float | None = None
    state: str | None = None
    energy_joules: float | None = None
    read_at: str | None = None  # the agent's report time, as the agent wrote it
    default_watts: float | None = None
    slowdown: float | None = None
    tokens: float | None = None
    step: float | None = None  # the worker's optimizer step and the step its run ends at (status.progress)
    planned_steps: float | None = None
    remaining_seconds: float | None = None  # the run time the worker still needed at its recent pace
    extra: Mapping[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[dict[str, str]] = {
        "pod": "pod", "node": "node", "gpus": "gpus", "policy": "policy", "limit_watts": "limitWatts", "state": "state",
        "energy_joules": "energyJoules", "read_at": "readAt", "default_watts": "defaultWatts", "slowdown": "slowdown",
        "tokens": "tokens", "step": "step", "planned_steps": "plannedSteps", "remaining_seconds": "remainingSeconds"}

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> PodPower:
        gpus = raw.get("gpus")
        return cls(
            pod=str(raw["pod"]), node=_text(raw.get("node")),
            gpus=None if gpus is None else tuple(str(g) for g in gpus),
            policy=_text(raw.get("policy")), limit_watts=number(raw.get("limitWatts")), state=_text(raw.get("state")),
            energy_joules=number(raw.get("energyJoules")), read_at=_text(raw.get("readAt")),
            default_watts=number(raw.get("defaultWatts")), slowdown=number(raw.get("slowdown")),
            tokens=number(raw.get("tokens")), step=number(raw.get("step")),
            planned_steps=number(raw.get("plannedSteps")), remaining_seconds=number(raw.get("remainingSeconds")),
            extra=_extra(raw, cls.KEYS.values()),
        )

    def to_status(self) -> dict[str, Any]:
        def rendered(name: str) -> Any:
            value = getattr(self, name)
            return list(value) if isinstance(value, tuple) else value

        return _render(((key, rendered(name)) for name, key in self.KEYS.items()), self.extra)


@dataclass(frozen=True)
class PowerStatus:
    """LLMJob status.power: the worker pods' limits and metered energy, from the node agents' reports."""

    pods: tuple[PodPower, ...] = ()
    energy_joules: float | None = None
    reported_at: str | None = None  # the newest report time, as the agents wrote it
    extra: Mapping[str, Any] = field(default_factory=dict)

    KEYS: ClassVar[tuple[str, ...]] = ("pods", "energyJoules", "reportedAt")

    @classmethod
    def read(cls, raw: object) -> PowerStatus | None:
        """status.power as read (None when there is none)."""
        if isinstance(raw, PowerStatus):
            return raw
        if not isinstance(raw, Mapping) or not raw:
            return None
        return cls(tuple(PodPower.read(p) for p in raw.get("pods") or ()), number(raw.get("energyJoules")),
                   _text(raw.get("reportedAt")), _extra(raw, cls.KEYS))

    def to_status(self) -> dict[str, Any]:
        """The JSON object to write to status.power."""
        return _render(zip(self.KEYS, ([p.to_status() for p in self.pods], self.energy_joules, self.reported_at),
                           strict=True), self.extra)
