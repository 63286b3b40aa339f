"""One GPU pod as the agent controls it: its power spec, search, token counter, and how the snapshot shows it.

The control loop (`controller.py`) decides when a pod is controlled, capped and ended; this record holds what it
remembers about the pod between passes. The token counter is read at a low rate for pods that are not
energyOptimal (the operator's energy per token), and ever less often while the worker does not answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from llmasos.agent.backend import GpuInfo
from llmasos.agent.energy import EnergyLedger, MeterState, PodRef
from llmasos.agent.leader import LeaderView
from llmasos.agent.pods import NodePodView
from llmasos.agent.power_policy import PowerSpec, SearchState
from llmasos.agent.progress import ProgressReader, ProgressReading
from llmasos.agent.snapshot import GpuStatus, PodStatus, Snapshot
from llmasos.api.worker_contract import FinalProgress


@dataclass
class PodControl:
    ref: PodRef
    spec: PowerSpec
    gpus: tuple[int, ...]
    search: SearchState | None = None
    state: str = "Default"
    tokens: float | None = None  # the worker's cumulative tokens at the last successful read
    step: float | None = None  # its step then, and the step its run ends at (None: not exported)
    planned_steps: float | None = None
    remaining_s: float | None = None  # run time the worker still needs at its recent pace (None: not known)
    progress_due: float = float("-inf")  # next token read (pods that are not energyOptimal)
    progress_wait: float = 0.0  # current wait between reads (grows while the worker does not answer)
    leader: LeaderView | None = None  # a follower of a multi-node job: its leader as last read (`leader.py`)
    leader_due: float = float("-inf")  # next read of the leader

    def read_tokens(
        self, progress: ProgressReader, pod: NodePodView, now: float, interval_s: float, max_backoff_s: float
    ) -> None:
        """The worker's token counter for the report, at most every `interval_s`; backs off up to `max_backoff_s`."""
        if now < self.progress_due:
            return
        reading = progress.read(pod, self.gpus)
        if reading is not None and reading.tokens is not None:
            self.take(reading)
            self.progress_wait = interval_s
        else:
            self.progress_wait = min(max(self.progress_wait * 2, interval_s), max_backoff_s)
        self.progress_due = now + self.progress_wait

    def renewed(self, ref: PodRef, spec: PowerSpec, gpus: tuple[int, ...]) -> PodControl:
        """A fresh control for a changed power spec or GPU set, keeping what the worker last counted."""
        return PodControl(ref=ref, spec=spec, gpus=gpus, tokens=self.tokens, step=self.step,
                          planned_steps=self.planned_steps, remaining_s=self.remaining_s)

    def take(self, reading: ProgressReading) -> None:
        """The worker's count from a /metrics reading: tokens and steps kept as they were where the reading lacks
        them; the remaining run time never (an old estimate is no estimate)."""
        self.tokens = reading.tokens if reading.tokens is not None else self.tokens
        self.step = reading.step if reading.step is not None else self.step
        self.planned_steps = reading.planned_steps if reading.planned_steps is not None else self.planned_steps
        self.remaining_s = reading.remaining_seconds

    def take_final(self, final: FinalProgress) -> bool:
        """The count an ended worker left in its termination message, where it is past the last reading."""
        if final.tokens <= (self.tokens or 0.0):
            return False
        self.tokens = final.tokens
        self.step = final.step if final.step is not None else self.step
        self.planned_steps = final.steps if final.steps is not None else self.planned_steps
        return True

    def to_status(self, ledger: EnergyLedger, limit_w: float | None, ended_at: float | None) -> PodStatus:
        """The snapshot's view: `limit_w` is the limit on its first GPU now (None once ended)."""
        s = self.search
        chosen = s.chosen.limit_w if s is not None and s.chosen is not None else None
        slowdown = s.slowdown(s.chosen) if s is not None and s.chosen is not None else None
        if s is None and self.leader is not None:  # a follower shows the choice it follows
            chosen, slowdown = self.leader.chosen_w, self.leader.slowdown
        return PodStatus(
            ref=self.ref, gpus=self.gpus, policy=self.spec.policy, limit_w=limit_w, state=self.state,
            energy_j=ledger.pod_joules(self.ref), ended_at=ended_at,
            chosen_w=chosen, slowdown=slowdown, searches=s.searches if s else 0,
            tokens=self.tokens, step=self.step, planned_steps=self.planned_steps, remaining_s=self.remaining_s,
        )  # fmt: skip


def build_snapshot(
    node: str, t: float, mapper: str, gpus: Sequence[GpuInfo], limits_w: Mapping[int, float],
    meters: Mapping[int, MeterState], owners: Mapping[int, PodRef], live: Iterable[PodControl],
    ended: Iterable[tuple[float, PodControl]], ledger: EnergyLedger, counters: Mapping[str, int],
) -> Snapshot:  # fmt: skip
    """The pass's picture: every GPU (limit now, last power, owner) and every live or recently ended pod."""
    def gpu_status(g: GpuInfo) -> GpuStatus:
        power = meters[g.index].power_w if g.index in meters else 0.0
        return GpuStatus(
            g.index, g.uuid, g.name, power, limits_w.get(g.index, 0.0), g.default_limit_mw / 1000,
            g.min_limit_mw / 1000, g.max_limit_mw / 1000, owners.get(g.index), g.has_energy_counter,
        )  # fmt: skip

    pods = [c.to_status(ledger, limits_w.get(c.gpus[0]) if c.gpus else None, None) for c in live]
    pods += [c.to_status(ledger, None, at) for at, c in ended]
    return Snapshot(
        node=node, t=t, mapper=mapper, gpus=tuple(gpu_status(g) for g in gpus),
        pods=tuple(sorted(pods, key=lambda p: (p.ref.namespace, p.ref.name, p.ref.uid))),
        ledger=ledger, counters=tuple(sorted(counters.items())),
    )  # fmt: skip
