"""One convention for quantities and times written for people (kubectl columns, report, CLI)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmasos.api.units import energy_text, mass_text, moment_text


@pytest.mark.parametrize(("kwh", "text"), [
    (0.0, "0 Wh"), (0.000123, "0.12 Wh"), (0.34, "340 Wh"), (1.234, "1.2 kWh"), (12.5, "12.5 kWh"),
    (123.4, "123 kWh"), (1234.0, "1.2 MWh"), (-2.0, "-2.0 kWh"),
])
def test_energy(kwh: float, text: str) -> None:
    assert energy_text(kwh) == text


@pytest.mark.parametrize(("grams", "text"), [
    (0.0, "0 g"), (340.0, "340 g"), (1234.0, "1.2 kg"), (1e6, "1.0 t"), (12_345_678.0, "12.3 t"), (0.5, "0.5 g"),
])
def test_mass(grams: float, text: str) -> None:
    assert mass_text(grams) == text


def test_moments_read_the_same_from_a_datetime_or_rfc3339() -> None:
    assert moment_text("2026-12-04T14:00:00Z") == "2026-12-04 14:00 UTC"
    assert moment_text(datetime(2026, 12, 4, 14, tzinfo=UTC)) == "2026-12-04 14:00 UTC"
    assert moment_text("") == ""
