"""How LLMasOS writes quantities and times for people: one convention for kubectl columns, the report and the CLI.

Data (status fields, JSON, CSV) keeps base units named in the key or header (`energyKWh`, `gCO2e`, RFC 3339
`...Z` times). Text for people scales: energy in Wh, kWh or MWh, emissions in g, kg or t CO2e, three significant
figures at most, and times as `YYYY-MM-DD HH:MM UTC`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def _scaled(value: float, steps: tuple[tuple[float, str], ...]) -> str:
    a = abs(value)
    factor, unit = next(((f, u) for f, u in steps if a >= f), steps[-1])
    x = value / factor
    if x == 0:
        text = "0"
    elif abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 1:
        text = f"{x:.1f}"
    else:
        text = f"{x:.2g}"
    return f"{text} {unit}"


def energy_text(kwh: float) -> str:
    """"340 Wh", "1.2 kWh", "12.5 MWh"."""
    return _scaled(kwh, ((1e3, "MWh"), (1.0, "kWh"), (1e-3, "Wh")))


def mass_text(grams: float) -> str:
    """"340 g", "1.2 kg", "1.0 t" (of CO2e)."""
    return _scaled(grams, ((1e6, "t"), (1e3, "kg"), (1.0, "g")))


def moment_text(moment: datetime | str) -> str:
    """"2026-12-04 14:00 UTC" from a datetime or an RFC 3339 string ("" stays "")."""
    if isinstance(moment, str):
        if not moment:
            return ""
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
