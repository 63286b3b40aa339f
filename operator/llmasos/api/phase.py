"""An LLMJob's phase: one enum, and the one set of phases a job never leaves.

A `StrEnum`, so a phase is written to status (JSON) and compared with what status holds as the plain string it was
before ("Deferred"). A pod's phase (agent/pods.py) is another API's concept that happens to share two names; it is
not this type.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    DEFERRED = "Deferred"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


# A job in one of these phases never changes phase again (its final energy may still be accounted).
TERMINAL: frozenset[str] = frozenset({Phase.SUCCEEDED, Phase.FAILED})


# A Pod's phases that never change (Kubernetes' pod phases, not an LLMJob's): the agent stops metering such a pod, and
# the operator reads its container's exit from it.
POD_TERMINAL: frozenset[str] = frozenset({"Succeeded", "Failed"})


def is_terminal(phase: object) -> bool:
    """Whether a phase read from status (a string, possibly missing) is final."""
    return phase in TERMINAL
