"""Whether this operator replica leads, read from a kopf peering object's status (pure; no I/O).

kopf pauses a replica's handlers while a live peer has a higher priority, and pauses every replica while two live
peers share a priority. The operator's periodic resync runs outside kopf's handlers (it replaced a per-object kopf
timer whose finalizer cost two PATCHes per LLMJob), so it applies the same rule to the same record before acting.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from llmasos.api.clock import parse_instant_or_none


def is_leader(peers: Mapping[str, object], my_priority: int, now: datetime) -> bool:
    """`peers` is the peering object's `status`: {identity: {priority, lifetime, lastseen}}. A record whose
    lastseen + lifetime has passed is dead; an unreadable record counts as alive (never act on a doubt)."""
    same = 0
    for info in peers.values():
        if not isinstance(info, Mapping):
            continue
        lastseen = parse_instant_or_none(info.get("lastseen"))
        try:
            lifetime = float(info.get("lifetime", 60))
            priority = int(info.get("priority", 0))
        except (TypeError, ValueError):
            return False
        if lastseen is not None and lastseen + timedelta(seconds=lifetime) <= now:
            continue
        if priority > my_priority:
            return False
        if priority == my_priority:
            same += 1
    return same <= 1
