"""Time, once: the operator's clock, and instants parsed from and written to the API (RFC 3339, UTC, whole seconds).

Every status field, Event and plan holds instants as "2024-03-06T19:00:00Z"; every parser here accepts what the
API server and users write ("...Z", "...+02:00", fractions of a second) and refuses a time without a zone (its zone
would be a guess). The clock is injected (`Clock`): the operator context, the carbon sources and the tests pass one,
nothing calls `datetime.now` itself. (The node agent's clocks, `agent/clock.py`, are this Clock too, also read as epoch
seconds for its sample arithmetic; it renders those with `format_epoch`.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

# The operator's clock: the current UTC instant.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock (the default wherever a `Clock` is taken)."""
    return datetime.now(UTC)


def ensure_utc(moment: datetime, what: str = "time") -> datetime:
    """Return `moment` in UTC; a naive datetime is a bug (its zone is a guess), so it raises ValueError."""
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(f"{what} {moment.isoformat()} has no time zone; use UTC-aware datetimes")
    return moment.astimezone(UTC)


def parse_instant(text: str, what: str = "time") -> datetime:
    """Parse ISO-8601/RFC 3339 ("2024-03-06T19:00:00.000Z", "...+02:00") into a UTC datetime; naive text is refused
    (ValueError naming `what`). The one parser of instants: the spec (`api.spec.parse_time`, as a SpecError), the
    Kueue deadline annotation, the offline validator and every status field use it."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} must be an ISO-8601 string, got {text!r}")
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise ValueError(f"{what} {text!r} has no time zone (add one, e.g. a trailing Z)")
    return moment.astimezone(UTC)


def parse_instant_or_none(value: object) -> datetime | None:
    """An instant read from status or another object where a missing or unreadable value means "unknown"."""
    if value is None or value == "":
        return None
    try:
        return parse_instant(str(value))
    except ValueError:
        return None


def format_instant(moment: datetime) -> str:
    """Render an instant as the API writes it: UTC, whole seconds, a `Z` suffix ("2024-03-06T19:00:00Z")."""
    return ensure_utc(moment).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def format_epoch(seconds: float) -> str:
    """`format_instant` for seconds since the epoch (the node agent's clock)."""
    return format_instant(datetime.fromtimestamp(seconds, UTC))
