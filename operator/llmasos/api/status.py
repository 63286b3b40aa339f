"""`status.plan` as a typed value: parsed once when read, written back as the same JSON.

The carbon gate, the segment gate, the served-time ledger and the metrics read the plan's instants, intensities and
ledger from here instead of each parsing the status dict again. The JSON object the plan was read from (or rendered
as) is kept unchanged (`to_status`), so what the operator writes is byte for byte what it wrote before: the typed
fields are a reading of it, never a second source. A plan is also a read-only `Mapping` of that JSON, for code and
tests that look at a field by its status name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llmasos.api.clock import parse_instant


@dataclass(frozen=True)
class Segment:
    """One run window of a plan: [start, end)."""

    start: datetime
    end: datetime


def _instant(fields: Mapping[str, Any], key: str) -> datetime | None:
    value = fields.get(key)
    return parse_instant(str(value), f"status.plan.{key}") if value else None


def _number(fields: Mapping[str, Any], key: str) -> float | None:
    value = fields.get(key)
    return None if value is None else float(value)


class PlanStatus(Mapping[str, Any]):
    """status.plan, read once. Every field may be missing (a plan written by an older operator, or a ledger alone)."""

    __slots__ = ("_fields", "expected_intensity", "expected_savings_percent", "forecast_issued_at", "latest_start",
                 "paced_owed_seconds", "reason", "run_now_intensity", "running_since", "runs", "segments",
                 "served_seconds", "source", "start_at", "suspended_at")

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields: dict[str, Any] = dict(fields)
        self.start_at = _instant(fields, "startAt")
        self.latest_start = _instant(fields, "latestStart")
        self.segments = tuple(Segment(parse_instant(str(s["start"]), "status.plan.segments[].start"),
                                      parse_instant(str(s["end"]), "status.plan.segments[].end"))
                              for s in fields.get("segments") or ())
        self.forecast_issued_at: str | None = fields.get("forecastIssuedAt")
        self.source: str | None = fields.get("source")
        self.expected_intensity = _number(fields, "expectedIntensity")
        self.run_now_intensity = _number(fields, "runNowIntensity")
        self.expected_savings_percent = _number(fields, "expectedSavingsPercent")
        self.reason = str(fields.get("reason") or "")
        # The served-time ledger of a started interruptible job (planning/timing/served.py).
        self.served_seconds = max(float(fields.get("servedSeconds") or 0.0), 0.0)
        self.running_since = _instant(fields, "runningSince")
        self.suspended_at = _instant(fields, "suspendedAt")
        runs = fields.get("runs")
        self.runs: int | None = None if runs is None else int(runs)
        paced = fields.get("pacedOwedSeconds")
        self.paced_owed_seconds: float | None = None if paced is None else max(float(paced), 0.0)

    @classmethod
    def read(cls, raw: object) -> PlanStatus | None:
        """The plan in a status (None when there is none)."""
        if isinstance(raw, PlanStatus):
            return raw
        return cls(raw) if isinstance(raw, Mapping) and raw else None

    def updated(self, **fields: Any) -> PlanStatus:
        """This plan with some status fields replaced (by their status names)."""
        return PlanStatus({**self._fields, **fields})

    def to_status(self) -> dict[str, Any]:
        """The JSON object to write to status.plan."""
        return dict(self._fields)

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"PlanStatus({self._fields!r})"
