"""The error taxonomy of LLMasOS: every failure is one of these, so handlers can map it to kopf's retry semantics.

    LLMasOSError
    ├── SpecError            the LLMJob asks for something impossible or malformed      -> PermanentError + condition
    ├── PlacementError       no node pool can host the job as asked (e.g. unknown pool) -> Pending condition, slow retry
    ├── ConfigError          the operator's own settings file or environment is invalid -> exit at start-up
    ├── AccountingInputError energy readings the accounting cannot use (logged, status.carbon left as it was)
    └── TransientError       worth retrying after a delay                               -> TemporaryError(delay)
        ├── KubeApiError     409 conflicts, 429, 5xx and connection failures of the API server
        └── CarbonSourceError  a carbon-intensity source is down, slow, rate-limited or returned garbage

`KubeApiError` also carries non-retryable API answers (403, 404, 422): `retryable` says which.
`CarbonSourceError` carries its failure as a record (`CarbonFailure`: source, kind, retry-after, message), so that
callers count, word and compare failures from fields instead of parsing message text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LLMasOSError(Exception):
    """Root of every error LLMasOS raises on purpose."""


class SpecError(LLMasOSError):
    """An LLMJob spec that can never be acted on; `field` names the offending field (dot path)."""

    def __init__(self, message: str, field: str = "spec") -> None:
        super().__init__(message)
        self.field = field


class PlacementError(LLMasOSError):
    """No node pool can host the job now; `reason` is a CamelCase condition reason."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(LLMasOSError):
    """The operator's settings are invalid; raised once at start-up, never during reconciliation."""


class AccountingInputError(LLMasOSError):
    """Energy readings or intensity data that the accounting rejects (e.g. an interval ending before it starts)."""


class TransientError(LLMasOSError):
    """A failure that may succeed later; `delay` is the suggested retry delay in seconds."""

    def __init__(self, message: str, delay: float = 10.0) -> None:
        super().__init__(message)
        self.delay = delay


class KubeApiError(TransientError):
    """An API server answer other than success. `status` is the HTTP code (0 when no answer came)."""

    RETRYABLE = frozenset({0, 409, 429, 500, 502, 503, 504})

    def __init__(self, message: str, status: int, reason: str = "", delay: float = 5.0) -> None:
        super().__init__(message, delay)
        self.status = status
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.status in self.RETRYABLE

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class CarbonFailureKind(StrEnum):
    """What went wrong with a carbon-intensity source, in words a user can act on."""

    UNAVAILABLE = "unavailable"  # no usable answer: timeout, connection failure, HTTP 5xx
    RATE_LIMITED = "rate-limited"  # HTTP 429
    REFUSED = "refused"  # another HTTP 4xx: a wrong token, a zone the API plan does not include
    NO_DATA = "no-data"  # nothing for this location or time: an unknown zone, null values, a gap, an empty answer
    STALE = "stale"  # data too old to plan with, or a forecast that ends before now
    MALFORMED = "malformed"  # an answer that is not the documented shape
    ALL_FAILED = "all-failed"  # a fallback chain whose every source failed (see `failures`)


@dataclass(frozen=True, slots=True)
class CarbonFailure:
    """One failure of one source. `message` is stable: the same failure reads the same on every pass, so a condition
    or status field built from it does not flip; what varies (an instant, a countdown) is in `detail`, for logs.
    `retry_after` is the wait in seconds the source asked for (HTTP Retry-After), None when it said nothing."""

    source: str
    kind: CarbonFailureKind
    message: str
    retry_after: float | None = None
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"

    def for_log(self) -> str:
        """Everything known, for the operator's log (never for status: it changes from pass to pass)."""
        extra = [self.kind.value, *([self.detail] if self.detail else []),
                 *([f"retry after {self.retry_after:g} s"] if self.retry_after is not None else [])]
        return f"{self} ({', '.join(extra)})"


class CarbonSourceError(TransientError):
    """A carbon-intensity source could not give usable data: `failure` says which source and what went wrong;
    `failures` lists every source's failure when a fallback chain gave up (else just `failure`)."""

    def __init__(self, message: str, source: str, delay: float = 30.0, *,
                 kind: CarbonFailureKind = CarbonFailureKind.UNAVAILABLE, retry_after: float | None = None,
                 detail: str = "", failures: tuple[CarbonFailure, ...] = ()) -> None:
        super().__init__(f"{message} ({detail})" if detail else message, delay)
        self.failure = CarbonFailure(source, kind, message, retry_after, detail)
        self.failures = failures or (self.failure,)

    @property
    def source(self) -> str:
        return self.failure.source
