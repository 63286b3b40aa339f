"""Zone keys, normalised in one place, and what "a zone LLMasOS knows" means.

Electricity Maps zone keys are upper case ("DE", "US-CAL-CISO", "SE-SE3"); cloud regions are lower case behind their
cloud ("gcp:europe-west4"). `normalize_zone` writes any spelling the way the sources key their data, so "de" and "DE"
get the same trace and the same numbers. A zone is known when a trace ships for it or the static table has a value
for it (its country, by the zone's prefix, or its cloud region); for anything else the static source would only have
the world average, with no timing signal: `llmasos plan` refuses such a zone (`check_zone`), and the operator plans
it on the world average and says so in the plan's source message (docs/carbon.md, "Zones").
"""

from __future__ import annotations

from llmasos.carbon.base import normalize_zone
from llmasos.carbon.static import SOURCE as STATIC
from llmasos.carbon.static import StaticSource
from llmasos.carbon.trace import shipped_trace_files

__all__ = ["check_zone", "is_known_zone", "normalize_zone"]


def is_known_zone(key: str) -> bool:
    zone = normalize_zone(key)
    if zone in shipped_trace_files():
        return True
    return StaticSource(default_intensity=None).lookup_or_none(zone) is not None


def check_zone(key: str) -> str:
    """The normalised zone; ValueError naming the zones that have data when LLMasOS knows nothing of `key` ("" stays
    "": no zone given)."""
    if not key:
        return ""
    zone = normalize_zone(key)
    if not is_known_zone(zone):
        raise ValueError(
            f"unknown carbon zone {key!r}: no trace and no annual average for it ({STATIC} would fall back to the "
            f"world average, which cannot time a job). Hourly traces ship for "
            f"{', '.join(sorted(shipped_trace_files()))}; annual averages exist for any Electricity Maps zone of a "
            "listed country (DE, FR, US-CAL-CISO, ...) and for cloud regions (gcp:europe-west4)")
    return zone
