"""One GPU pod as the agent controls it: its power spec, search, token counter, and how the snapshot shows it.

The control loop (`controller.py`) decides when a pod is controlled, capped and ended; this record holds what it
remembers about the pod between passes. The token counter is read at a low rate for pods that are not
energyOptimal (the operator's energy per token), and ever less often while the worker does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmasos.agent.energy import EnergyLedger, PodRef
from llmasos.agent.pods import NodePodView
from llmasos.agent.power_policy import PowerSpec, SearchState
from llmasos.agent.progress import ProgressReader
from llmasos.agent.snapshot import PodStatus


@dataclass
class PodControl:
    ref: PodRef
    spec: PowerSpec
    gpus: tuple[int, ...]
    search: SearchState | None = None
    state: str = "Default"
    tokens: float | None = None  # the worker's cumulative tokens at the last successful read
    progress_due: float = float("-inf")  # next token read (pods that are not energyOptimal)
    progress_wait: float = 0.0  # current wait between reads (grows while the worker does not answer)

    def read_tokens(
        self, progress: ProgressReader, pod: NodePodView, now: float, interval_s: float, max_backoff_s: float
    ) -> None:
        """The worker's token counter for the report, at most every `interval_s`; backs off up to `max_backoff_s`."""
        if now < self.progress_due:
            return
        reading = progress.read(pod, self.gpus)
        if reading is not None and reading.tokens is not None:
            self.tokens = reading.tokens
            self.progress_wait = interval_s
        else:
            self.progress_wait = min(max(self.progress_wait * 2, interval_s), max_backoff_s)
        self.progress_due = now + self.progress_wait

    def to_status(self, ledger: EnergyLedger, limit_w: float | None, ended_at: float | None) -> PodStatus:
        """The snapshot's view: `limit_w` is the limit on its first GPU now (None once ended)."""
        s = self.search
        chosen = s.chosen if s is not None else None
        slowdown = s.slowdown(chosen) if s is not None and chosen is not None else None
        return PodStatus(
            ref=self.ref, gpus=self.gpus, policy=self.spec.policy, limit_w=limit_w, state=self.state,
            energy_j=ledger.pod_joules(self.ref), ended_at=ended_at,
            chosen_w=chosen.limit_w if chosen else None, slowdown=slowdown, searches=s.searches if s else 0,
            tokens=self.tokens,
        )  # fmt: skip
