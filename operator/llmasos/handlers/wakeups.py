"""When LLMJobs' passes are due between resync rounds, in memory: at an instant, or as soon as possible.

Each pass sets its job's next instant by the clock (planning/lifecycle/wake.py: a planned start, a segment edge, a
deadline), or clears it. Another job's pass may ask for a job's pass `soon`: a new pool plan that moved its planned
start (handlers/fleet.py), so it writes its own new plan and Event. That request is kept apart from the instant, so
a pass already under way, which sets the job's next instant when it ends, cannot erase it. The resync loop
(handlers/resync.py) takes, every second, the jobs that are due and runs their passes. Lost on a restart, and set
again by the passes the watch's initial listing starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Wakeups:
    _due: dict[tuple[str, str], datetime] = field(default_factory=dict)
    _soon: set[tuple[str, str]] = field(default_factory=set)

    def set(self, namespace: str, name: str, at: datetime | None) -> None:
        """The job's next instant (None: none; a finished or deleted job's is dropped)."""
        if at is None:
            self._due.pop((namespace, name), None)
        else:
            self._due[(namespace, name)] = at

    def soon(self, key: str) -> None:
        """A pass for the job ("namespace/name") at the next check, whatever its next instant."""
        namespace, _, name = key.partition("/")
        self._soon.add((namespace, name))

    def take_due(self, now: datetime) -> list[tuple[str, str]]:
        """The jobs asked for soon or whose instant is `now` or past, once each (the pass they get sets the next
        instant)."""
        due = sorted({*self._soon, *(key for key, at in self._due.items() if at <= now)})
        self._soon.clear()
        for key in due:
            self._due.pop(key, None)
        return due
