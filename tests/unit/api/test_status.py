"""status.plan as a typed value: read once, written back byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from llmasos.api.status import PlanStatus, Segment

WRITTEN = {
    "policy": "deadline", "startAt": "2026-03-06T15:00:00Z", "endAt": "2026-03-06T17:00:00Z",
    "segments": [{"start": "2026-03-06T15:00:00Z", "end": "2026-03-06T17:00:00Z"}],
    "latestStart": "2026-03-07T09:00:00Z", "zone": "DE", "source": "trace", "forecastIssuedAt": None,
    "expectedIntensity": 120.5, "runNowIntensity": 400.0, "expectedSavingsPercent": 69.9, "feasible": True,
    "estimatedFraction": 0.0, "reason": "", "degraded": False, "sourceMessage": "",
    "servedSeconds": 600.0, "runningSince": None, "suspendedAt": "2026-03-06T15:10:00Z", "runs": 1,
}


def test_a_plan_is_read_once_into_typed_fields_and_written_back_unchanged() -> None:
    plan = PlanStatus.read(WRITTEN)
    assert plan is not None
    assert plan.start_at == datetime(2026, 3, 6, 15, tzinfo=UTC)
    assert plan.segments == (Segment(datetime(2026, 3, 6, 15, tzinfo=UTC), datetime(2026, 3, 6, 17, tzinfo=UTC)),)
    assert (plan.run_now_intensity, plan.expected_savings_percent, plan.runs) == (400.0, 69.9, 1)
    assert (plan.served_seconds, plan.running_since) == (600.0, None)
    assert json.dumps(plan.to_status(), sort_keys=True) == json.dumps(WRITTEN, sort_keys=True)
    assert plan == WRITTEN, "a read-only mapping of the JSON it was read from"
    assert PlanStatus.read(plan) is plan, "never parsed twice"


def test_an_update_replaces_fields_by_their_status_names_and_no_plan_reads_as_none() -> None:
    plan = PlanStatus(WRITTEN).updated(runNowIntensity=500.0)
    assert plan.run_now_intensity == 500.0
    assert plan["runNowIntensity"] == 500.0
    assert WRITTEN["runNowIntensity"] == 400.0
    assert PlanStatus.read(None) is None
    assert PlanStatus.read({}) is None
    ledger_only = PlanStatus({"servedSeconds": 30.0, "runs": 1})
    assert (ledger_only.start_at, ledger_only.segments, ledger_only.served_seconds) == (None, (), 30.0)
