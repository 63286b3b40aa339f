"""Carbon timing asked for by annotations on any Kueue-managed job (Job, JobSet, RayJob, TrainJob), parsed once.

The carbon AdmissionCheck (`llmasos.io/carbon`, handlers/admission_check.py) serves workloads that never see an
LLMJob, so their timing lives in annotations on the job object that owns the Kueue Workload:

- ``llmasos.io/deadline``: when the job must have finished, an RFC 3339 time ("2026-05-01T06:00:00Z"), or
- ``llmasos.io/max-delay``: how long after submission it may finish at the latest ("8h"), and optionally
- ``llmasos.io/expected-duration``: how long it runs (default 1h), the run time the planner reserves.

The same duration grammar as the LLMJob spec (api/durations.py). A job with neither deadline nor max-delay is not
carbon-timed: the check lets it through at once. A job whose annotations cannot be read gets an
:class:`AnnotationError` whose message names the annotation; the check then lets it through too, with that message
on the workload, so a typo never blocks a queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from llmasos.api.clock import parse_instant
from llmasos.api.durations import parse_duration
from llmasos.api.spec import DEFAULT_EXPECTED_DURATION

DEADLINE_ANNOTATION = "llmasos.io/deadline"
MAX_DELAY_ANNOTATION = "llmasos.io/max-delay"
EXPECTED_DURATION_ANNOTATION = "llmasos.io/expected-duration"
ANNOTATIONS = (DEADLINE_ANNOTATION, MAX_DELAY_ANNOTATION, EXPECTED_DURATION_ANNOTATION)


class AnnotationError(ValueError):
    """Timing annotations that cannot be read; `annotation` names the offending one."""

    def __init__(self, message: str, annotation: str) -> None:
        super().__init__(message)
        self.annotation = annotation


@dataclass(frozen=True)
class TimingRequest:
    """What a job's annotations ask for: finish by `deadline` (UTC), running about `expected_duration`."""

    deadline: datetime
    expected_duration: timedelta
    submitted_at: datetime

    @property
    def latest_start(self) -> datetime:
        return self.deadline - self.expected_duration


def parse_timing(annotations: Mapping[str, str] | None, submitted_at: datetime) -> TimingRequest | None:
    """The job's timing request, None when it asks for none; raises AnnotationError naming the bad annotation."""
    ann = annotations or {}
    if submitted_at.tzinfo is None:
        raise ValueError("submitted_at must be UTC-aware")
    submitted = submitted_at.astimezone(UTC)
    deadline_text, delay_text = ann.get(DEADLINE_ANNOTATION), ann.get(MAX_DELAY_ANNOTATION)
    if deadline_text is None and delay_text is None:
        return None
    if deadline_text is not None and delay_text is not None:
        raise AnnotationError(f"set {DEADLINE_ANNOTATION} or {MAX_DELAY_ANNOTATION}, not both", DEADLINE_ANNOTATION)
    duration_text = ann.get(EXPECTED_DURATION_ANNOTATION)
    duration = DEFAULT_EXPECTED_DURATION
    if duration_text is not None:
        duration = _duration(duration_text, EXPECTED_DURATION_ANNOTATION)
        if duration <= timedelta(0):
            raise AnnotationError(f"{EXPECTED_DURATION_ANNOTATION} must be positive, got {duration_text!r}",
                                  EXPECTED_DURATION_ANNOTATION)
    if deadline_text is not None:
        deadline = _instant(deadline_text)
    else:
        assert delay_text is not None
        deadline = submitted + _duration(delay_text, MAX_DELAY_ANNOTATION)
    return TimingRequest(deadline=deadline, expected_duration=duration, submitted_at=submitted)


def _duration(text: str, annotation: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise AnnotationError(f"{annotation}: {exc}", annotation) from None


def _instant(text: str) -> datetime:
    """An RFC 3339 time with a zone ("2026-05-01T06:00:00Z", "...+02:00"), in UTC; a time without a zone is refused
    (its meaning would depend on the operator's clock settings)."""
    try:
        return parse_instant(text, DEADLINE_ANNOTATION)
    except ValueError:
        raise AnnotationError(
            f"{DEADLINE_ANNOTATION} {text!r} is not an RFC 3339 time with a zone, such as 2026-05-01T06:00:00Z",
            DEADLINE_ANNOTATION) from None
