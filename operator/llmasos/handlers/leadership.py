"""Export whether this replica leads: `llmasos_operator_leader` (the LLMasOSOperatorNoLeader alert sums it).

The same check as the resync's (`resync.leads`: standalone, or named leader by every peering record it takes part in),
repeated on its own clock so the gauge stays current while the resync round is busy or paused.
"""

from __future__ import annotations

import asyncio
import logging

from llmasos.errors import TransientError
from llmasos.handlers.context import OperatorContext
from llmasos.handlers.resync import leads

log = logging.getLogger("llmasos.leadership")
LEADERSHIP_CHECK_SECONDS = 10.0


async def export_leadership_forever(ctx: OperatorContext, interval: float = LEADERSHIP_CHECK_SECONDS) -> None:
    while True:
        try:
            ctx.metrics.record_leader(await leads(ctx))
        except TransientError as exc:  # the API server is slow or down: keep the last value, try again
            log.info(f"leadership check failed, kept the last value: {exc}")
        await asyncio.sleep(interval)
