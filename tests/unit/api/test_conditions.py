"""status.conditions as a typed value: metav1.Condition semantics, and the JSON it was read from rendered unchanged."""

from __future__ import annotations

import json
from typing import Any

from llmasos.api.conditions import Condition, Conditions, ConditionStatus

WRITTEN: list[dict[str, Any]] = [
    {"type": "Scheduled", "status": "True", "reason": "PoolSelected", "message": "node pool a100",
     "lastTransitionTime": "2026-03-06T11:00:00Z", "observedGeneration": 1},
    {"type": "Deferred", "status": "False", "reason": "PlannedWindowReached", "message": "",
     "lastTransitionTime": "2026-03-06T12:00:00Z", "observedGeneration": 2},
]


def test_conditions_read_and_render_the_same_json() -> None:
    conditions = Conditions.read(WRITTEN)
    assert [c.type for c in conditions] == ["Scheduled", "Deferred"]
    assert conditions.is_true("Scheduled")
    assert not conditions.is_true("Deferred")
    assert conditions.get("Running") is None
    assert json.dumps(conditions.to_status()) == json.dumps(WRITTEN)
    # Another writer's entry (no generation, a key of its own) is kept as it was.
    foreign = [{"type": "Custom", "status": "Unknown", "reason": "X", "extraKey": 1}]
    assert Conditions.read(foreign).to_status() == foreign
    assert Conditions.read(None).to_status() == []
    assert Conditions.read(Conditions.read(WRITTEN)) == conditions


def test_condition_keeps_transition_time_unless_status_flips() -> None:
    conds = Conditions().set(Condition("Running", "True", "A"), "t1", 1)
    conds = conds.set(Condition("Running", "True", "B", "msg"), "t2", 2)
    assert conds.get("Running") == ConditionStatus("Running", "True", "B", "msg", "t1", 2)
    conds = conds.set(Condition("Running", "False", "C"), "t3", 2)
    assert conds.to_status() == [{"type": "Running", "status": "False", "reason": "C", "message": "",
                                  "lastTransitionTime": "t3", "observedGeneration": 2}]


def test_setting_one_condition_leaves_the_others_as_read() -> None:
    conds = Conditions.read(WRITTEN).set(Condition("Deferred", "True", "WaitingForLowCarbonWindow", "m"), "t9", 3)
    assert conds.to_status()[0] == WRITTEN[0]
    assert conds.to_status()[1] == {"type": "Deferred", "status": "True", "reason": "WaitingForLowCarbonWindow",
                                    "message": "m", "lastTransitionTime": "t9", "observedGeneration": 3}
