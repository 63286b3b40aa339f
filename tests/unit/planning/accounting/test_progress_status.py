"""status.progress from the pods' step counts: the largest step of the pods that report a planned total."""

from __future__ import annotations

from datetime import UTC, datetime

from llmasos.api.energy_status import PodPower
from llmasos.planning.accounting.progress_status import JobProgress, build_progress


def pod(name: str, step: float | None, planned: float | None) -> PodPower:
    return PodPower(pod=name, step=step, planned_steps=planned)


def test_no_progress_without_a_planned_step_count() -> None:
    assert build_progress([]) is None
    assert build_progress([pod("a", None, None)]) is None
    assert build_progress([pod("a", 1, None)]) is None  # a step, no planned total (an older worker's inference)
    assert build_progress([pod("a", None, 100)]) is None


def test_the_largest_step_of_the_jobs_pods() -> None:
    # Attempt 0 reached step 40; attempt 1 resumed from the checkpoint at 30 and has not passed 40 yet.
    pods = [pod("j-a0-0", 40, 100), pod("j-a1-0", 35, 100), pod("j-a1-1", 34, 100), pod("x", 7, None)]
    assert build_progress(pods) == JobProgress(40, 100)


def test_a_rerun_of_a_task_without_checkpoints_shows_its_own_count_once_it_has_one() -> None:
    """Inference suspended by the user and resumed: the earlier run's pods ended at 300 of 480 tokens, the rerun
    counts from 0 again. Until a running pod reports, the earlier count stays; then the rerun's shows."""
    earlier = [PodPower(pod="j-a0-0-x", state="Ended", step=300, planned_steps=480),
               PodPower(pod="j-a0-1-x", state="Ended", step=296, planned_steps=480)]
    starting = PodPower(pod="j-a0-0-y", state="Default", step=None, planned_steps=None)
    rerun = PodPower(pod="j-a0-0-y", state="Default", step=40, planned_steps=480)
    assert build_progress([*earlier, starting], counts_from_checkpoint=False) == JobProgress(300, 480)
    assert build_progress([*earlier, rerun], counts_from_checkpoint=False) == JobProgress(40, 480)
    # Training counts on from its checkpoint: a rerun below the earlier count does not take it back.
    assert build_progress([*earlier, rerun]) == JobProgress(300, 480)


def test_percent_is_rounded_down_and_reaches_100_only_at_the_last_step() -> None:
    assert JobProgress(999, 1000).percent == 99
    assert JobProgress(1000, 1000).to_status() == {"step": 1000, "plannedSteps": 1000, "percent": 100,
                                                   "display": "1000/1000 (100%)"}
    assert JobProgress(0, 3).to_status()["display"] == "0/3 (0%)"


def test_the_estimated_end_is_the_leading_pods_reading_plus_the_run_time_it_still_needed() -> None:
    running = PodPower(pod="j-a0-0", state="Default", read_at="2026-03-06T12:00:00Z", step=250, planned_steps=1000,
                       remaining_seconds=1800.4)
    found = build_progress([running, pod("j-a0-1", 249, 1000)])
    assert found == JobProgress(250, 1000, 1800.4, datetime(2026, 3, 6, 12, 30, 0, tzinfo=UTC))
    assert found is not None
    assert found.to_status() == {"step": 250, "plannedSteps": 1000, "percent": 25, "display": "250/1000 (25%)",
                                 "remainingSeconds": 1800, "estimatedEnd": "2026-03-06T12:30:00Z"}
    # Not measured yet, ended (suspended, failed), or done: no estimate.
    assert build_progress([PodPower(pod="p", state="Default", read_at="2026-03-06T12:00:00Z", step=0,
                                    planned_steps=1000)]) == JobProgress(0, 1000)
    ended = PodPower(pod="p", state="Ended", read_at="2026-03-06T12:00:00Z", step=250, planned_steps=1000,
                     remaining_seconds=1800.0)
    assert build_progress([ended]) == JobProgress(250, 1000)
    done = PodPower(pod="p", state="Default", read_at="2026-03-06T12:00:00Z", step=1000, planned_steps=1000,
                    remaining_seconds=0.0)
    assert build_progress([done]) == JobProgress(1000, 1000)
