"""When a job's next pass is due by the clock alone (pure), so that it runs then and not at the next resync.

Most passes follow a watch event. What no event announces is time: a deferred job's planned start, the end of an
interruptible job's segment (where the plan suspends it) and the start of the next, and a deadline passing while
the job has not finished. The periodic resync (30 s by default) catches them all, but up to a resync late: a job
"deferred until 14:00" started at 14:00:29, an interruptible job ran half a minute into a dirty hour. So every pass
says when the next such instant is (`next_wake`), and the resync loop, which looks every second, runs that job's
pass once it has come. Kept in memory only: after a restart (or a change of leader) the passes over every LLMJob
that the watch's initial listing starts set them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.clock import parse_instant_or_none
from llmasos.api.phase import TERMINAL, Phase
from llmasos.api.status import PlanStatus

LATE_AFTER = timedelta(seconds=1)


def next_wake(status: Mapping[str, Any], deadline: datetime | None, interruptible: bool,
              now: datetime) -> datetime | None:
    """The first instant after `now` at which time alone changes what a pass over this status decides: the planned
    start of a deferred job, a segment boundary of an interruptible one, the deadline of one not finished. None when
    there is none (a finished job; its expiry, ttlSecondsAfterFinished, is left to the resync)."""
    phase = str(status.get("phase") or "")
    if phase in TERMINAL:
        return None
    # Just past the deadline: a job is late only once its deadline has passed.
    candidates: list[datetime | None] = [deadline + LATE_AFTER if deadline is not None else None]
    if phase == Phase.DEFERRED:
        candidates.append(parse_instant_or_none(status.get("scheduledStart")))
    plan = PlanStatus.read(status.get("plan"))
    if interruptible and plan is not None:
        candidates.extend(edge for s in plan.segments for edge in (s.start, s.end))
    return _first_after(candidates, now)


def _first_after(instants: Iterable[datetime | None], now: datetime) -> datetime | None:
    return min((t for t in instants if t is not None and t > now), default=None)
