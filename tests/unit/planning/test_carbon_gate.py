"""The carbon gate's status text: a source's message keeps what happened and drops what changes every pass."""

from __future__ import annotations

import pytest

from llmasos.carbon.fallback import Sourced
from llmasos.planning.carbon_gate import stable_message


@pytest.mark.parametrize("left", [59, 37, 1])
def test_a_cooling_source_gives_the_same_message_on_every_pass(left: int) -> None:
    answer = Sourced(None, "trace", True, (f"electricitymaps: /carbon-intensity/forecast: HTTP 503 (not retried for "
                                           f"{left} s)",))
    assert stable_message(answer.message) == (
        "carbon intensity from trace (degraded: electricitymaps: /carbon-intensity/forecast: HTTP 503)")


def test_timings_are_dropped_and_the_fault_is_kept() -> None:
    assert stable_message("electricitymaps: /x: rate limited for 3600s; trace: trace for DE has a gap at "
                          "2026-11-25T12:00:00Z") == "electricitymaps: /x: rate limited; trace: trace for DE has a gap"
    assert stable_message("carbon intensity from electricitymaps") == "carbon intensity from electricitymaps"
