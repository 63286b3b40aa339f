"""The status write's merge patch: None and a field gone from an object delete it, and a status that already reads
as the rendered one is not written (a write per resync for nothing, and stale fields, before)."""

from __future__ import annotations

from typing import Any

from llmasos.planning.lifecycle.status_patch import pruned, status_patch
from tests.unit.handlers.fake_kube import merge_patch


def test_nothing_to_write_when_the_stored_status_reads_as_the_rendered_one() -> None:
    stored = {"phase": "Running", "plan": {"servedSeconds": 10.0, "runs": 1}}
    rendered = {"phase": "Running", "plan": {"servedSeconds": 10.0, "runs": 1, "runningSince": None}}
    assert status_patch(stored, rendered) is None, "None is stored as no field: nothing changed"
    assert status_patch(stored, dict(stored)) is None


def test_a_field_gone_from_an_object_is_deleted_and_a_top_level_one_is_kept() -> None:
    stored = {"phase": "Running", "kopf": {"x": 1},
              "progress": {"step": 900, "plannedSteps": 1000, "remainingSeconds": 60, "estimatedEnd": "t"}}
    rendered = {"phase": "Succeeded", "progress": {"step": 1000, "plannedSteps": 1000}}
    patch = status_patch(stored, rendered)
    assert patch == {"phase": "Succeeded",
                     "progress": {"step": 1000, "remainingSeconds": None, "estimatedEnd": None}}
    assert merge_patch(stored, patch) == {**rendered, "kopf": {"x": 1}}


def test_new_objects_and_lists_are_written_as_stored() -> None:
    stored: dict[str, Any] = {"conditions": [{"type": "A", "status": "True"}]}
    rendered = {"conditions": [{"type": "A", "status": "False", "message": None}],
                "plan": {"startAt": "t", "runningSince": None}, "carbon": None}
    patch = status_patch(stored, rendered)
    assert patch == {"conditions": [{"type": "A", "status": "False"}], "plan": {"startAt": "t"}}
    assert merge_patch(stored, patch) == pruned({k: v for k, v in rendered.items() if v is not None})
    assert status_patch(merge_patch(stored, patch), rendered) is None, "written once"
