"""Duration strings as users write them in LLMJob specs ("90s", "45m", "1h30m", "2d", "1.5h").

Go-style units (s, m, h) plus d for days; no sign, no bare numbers, so a forgotten unit is an error rather than a
silently tiny value. The same pattern is used in the CRD schema, so the API server rejects bad strings first.
"""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """Parse "1h30m" into a timedelta; raise ValueError with the offending text otherwise."""
    if not isinstance(text, str) or not re.fullmatch(DURATION_PATTERN, text.strip()):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 90s, 45m, 1h30m, 2d")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text.strip()))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a timedelta compactly ("1h30m", "45s"); the inverse of :func:`parse_duration` for whole seconds."""
    total = round(delta.total_seconds())
    if total <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out.append(f"{total // size}{unit}")
            total %= size
    return "".join(out)
