"""Re-planning a started interruptible job: where the rest of its run time should go on a newer forecast.

A started interruptible job's later segments were chosen on the forecast of the moment they were planned, up to
days ahead, and forecast error grows with lead time. Re-planning only the run time still owed, each time a newer
forecast arrives, is model-predictive control: `llmasos.planning.timing.backtest` measures what it is worth
(`replan_after_start=True`), and the operator's gate (`segment_gate.py`) calls this pure function with the run time
actually served (`served.py`, from the child Job's runs).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from llmasos.planning.timing.carbon_window import CarbonJob, Plan, plan_start
from llmasos.planning.timing.forecast import Forecast, ensure_utc
from llmasos.planning.timing.timeline import DEFAULT_UNKNOWN_PREMIUM


def remaining_job(job: CarbonJob, served: timedelta) -> CarbonJob | None:
    """`job` reduced to the run time still owed after `served`; None once nothing is owed."""
    if served < timedelta(0):
        raise ValueError(f"served run time must not be negative, got {served}")
    left = job.duration - served
    return replace(job, duration=left) if left > timedelta(0) else None


def replan_remaining(
    job: CarbonJob,
    served: timedelta,
    forecast: Forecast,
    now: datetime,
    *,
    unknown_premium: float = DEFAULT_UNKNOWN_PREMIUM,
) -> Plan | None:
    """The plan for the run time still owed, from `now` to the deadline; None when the job has run its duration.

    Same guarantees as `plan_start` for the remainder: it ends by `deadline - safetyMargin` whenever that is still
    possible, its segments add up to exactly the time owed, and on `forecast` it is never worse than running the
    rest straight away.
    """
    rest = remaining_job(job, served)
    if rest is None:
        return None
    return plan_start(rest, forecast, ensure_utc(now), unknown_premium=unknown_premium)


def replan_within_segments(
    job: CarbonJob,
    served: timedelta,
    forecast: Forecast,
    now: datetime,
    segments_left: int,
    open_run: bool,
    *,
    unknown_premium: float = DEFAULT_UNKNOWN_PREMIUM,
) -> Plan | None:
    """`replan_remaining` under maxSegments, when `segments_left` new runs may still open: a plan that runs now
    continues the open run (`open_run`), so its first segment is not a new run; one that holds opens new runs only.
    The operator's gate and the backtest (with `max_segments`) both use it, so both count segments alike."""
    if open_run:
        plan = replan_remaining(replace(job, max_segments=segments_left + 1), served, forecast, now,
                                unknown_premium=unknown_premium)
        if plan is None or plan.segments[0].start <= now:
            return plan
    return replan_remaining(replace(job, max_segments=max(segments_left, 1)), served, forecast, now,
                            unknown_premium=unknown_premium)
