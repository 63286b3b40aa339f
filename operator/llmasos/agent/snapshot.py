"""An immutable picture of the node after each control pass: what metrics, the report and tests read.

The loop swaps in a new Snapshot per pass; readers on other threads (the metrics server) see one whole pass or the
previous one, never a half-updated mix, without locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmasos.agent.energy import EnergyLedger, PodRef


@dataclass(frozen=True)
class GpuStatus:
    index: int
    uuid: str
    name: str
    power_w: float
    limit_w: float
    default_w: float
    min_w: float
    max_w: float
    pod: PodRef | None
    energy_counter: bool


@dataclass(frozen=True)
class PodStatus:
    """One GPU pod as the agent manages it (kept `retention_s` after it ended, for the report)."""

    ref: PodRef
    gpus: tuple[int, ...]
    policy: str
    limit_w: float | None  # the limit applied to its GPUs now (None when ended)
    state: str  # Default, Capped, Baseline/Profile/Refine/Settled (energyOptimal), NoProgress, Following, Ended, ...
    energy_j: float
    ended_at: float | None = None
    chosen_w: float | None = None  # energyOptimal: the limit the search settled on
    slowdown: float | None = None  # energyOptimal: measured slowdown of the chosen limit
    searches: int = 0  # energyOptimal: searches and re-checks so far
    tokens: float | None = None  # the worker's cumulative token counter at the last read (None: never read)
    step: float | None = None  # the worker's step then (None: not exported)
    planned_steps: float | None = None  # the step its run ends at (None: not exported)
    remaining_s: float | None = None  # run time it still needs at its recent pace (None: not known)


@dataclass(frozen=True)
class Snapshot:
    node: str
    t: float
    mapper: str
    gpus: tuple[GpuStatus, ...] = ()
    pods: tuple[PodStatus, ...] = ()
    ledger: EnergyLedger = field(default_factory=EnergyLedger.empty)
    counters: tuple[tuple[str, int], ...] = ()  # restores, cap_errors, counter_resets, energy_gaps, ...

    def counter(self, name: str) -> int:
        return dict(self.counters).get(name, 0)

    def pod(self, name: str, namespace: str = "default") -> PodStatus | None:
        return next((p for p in self.pods if p.ref.name == name and p.ref.namespace == namespace), None)
