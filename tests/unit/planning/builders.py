"""Small builders for planner tests: `make_forecast([...])`, `make_job("2h").deadline("12h")`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from llmasos.api.durations import parse_duration
from llmasos.planning.timing.carbon_window import CarbonJob
from llmasos.planning.timing.forecast import Forecast

T0 = datetime(2024, 3, 6, 0, 0, tzinfo=UTC)


def make_forecast(
    values: Sequence[float | None],
    step: str = "1h",
    start: datetime = T0,
    zone: str = "XX",
    issued_at: datetime | None = None,
) -> Forecast:
    """One point per value from `start`; None leaves a gap."""
    delta = parse_duration(step)
    pairs = [(start + i * delta, v) for i, v in enumerate(values) if v is not None]
    return Forecast.from_pairs(pairs, delta, zone=zone, issued_at=issued_at, source="test")


class JobBuilder:
    """Fluent CarbonJob builder; every call returns a new builder."""

    def __init__(self, job: CarbonJob) -> None:
        self.job = job

    def deadline(self, after: str) -> JobBuilder:
        """Deadline `after` the earliest start; switches the default policy from immediate to deadline."""
        policy = "deadline" if self.job.policy == "immediate" else self.job.policy
        return JobBuilder(replace(self.job, deadline=self.job.earliest_start + parse_duration(after), policy=policy))

    def interruptible(self, min_segment: str = "0s", max_segments: int | None = None) -> JobBuilder:
        return JobBuilder(
            replace(self.job, interruptible=True, min_segment=parse_duration(min_segment), max_segments=max_segments)
        )

    def margin(self, text: str) -> JobBuilder:
        return JobBuilder(replace(self.job, safety_margin=parse_duration(text)))

    def policy(self, name: str, max_intensity: float | None = None) -> JobBuilder:
        return JobBuilder(replace(self.job, policy=name, max_intensity=max_intensity))  # type: ignore[arg-type]

    def build(self) -> CarbonJob:
        return self.job


def make_job(duration: str = "1h", earliest: datetime = T0) -> JobBuilder:
    return JobBuilder(
        CarbonJob(
            duration=parse_duration(duration),
            earliest_start=earliest,
            policy="immediate",
            safety_margin=timedelta(0),
        )
    )
