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
"""

from __future__ import annotations


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


class CarbonSourceError(TransientError):
    """A carbon-intensity source could not give usable data; `source` names it."""

    def __init__(self, message: str, source: str, delay: float = 30.0) -> None:
        super().__init__(message, delay)
        self.source = source
