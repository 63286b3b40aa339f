"""The instants at which LLMJobs' passes are due by the clock alone (planning/lifecycle/wake.py), in memory.

Each pass sets its job's next instant (or clears it); the resync loop (handlers/resync.py) takes, every second,
the jobs whose instant has come and runs their passes, between its rounds. Lost on a restart, and set again by the
passes the watch's initial listing starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Wakeups:
    _due: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def set(self, namespace: str, name: str, at: datetime | None) -> None:
        """The job's next instant (None: none; a finished or deleted job's is dropped)."""
        if at is None:
            self._due.pop((namespace, name), None)
        else:
            self._due[(namespace, name)] = at

    def take_due(self, now: datetime) -> list[tuple[str, str]]:
        """The jobs whose instant is `now` or past, once each (the pass they get sets the next one)."""
        due = sorted(key for key, at in self._due.items() if at <= now)
        for key in due:
            del self._due[key]
        return due
