"""Energy metering: GPU energy deltas from NVML's counter (or integrated power samples) and their pod attribution.

Every carbon number of an LLMJob rests on these joules, so the rules are explicit and pure:

- Counter present: delta = counter - previous. A counter that went *down* was reset (driver reload, GPU reset):
  the new reading is the energy since the reset, so it is the delta (the energy between the previous reading and
  the reset is lost: at most one sampling interval). A delta larger than the GPU could draw at its maximum limit
  (x `PLAUSIBLE_MARGIN`) is rejected as a glitch and replaced by integrated power. "In that time" means since the
  counter last advanced, not since the previous sample: NVML's counter moves in steps (about every 100 ms on an
  H200), so a sampler faster than the steps sees zero deltas and then one jump that holds several intervals'
  energy. Judged against one sampling interval, those jumps were thrown away (57 % of the energy at 50 ms).
- No counter (pre-Volta GPUs): trapezoidal integration of power samples. A gap longer than `max_gap_s` (the agent
  was down) is integrated over `max_gap_s` only, at the current power, and counted as a gap: guessing a long
  stretch would invent energy.
- Attribution: the delta of an interval goes to the pod that owned the GPU at the *start* of the interval (the
  owner the previous sample saw); unowned GPUs accrue to an idle bucket (pod None), exported too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

PLAUSIBLE_MARGIN = 1.5


@dataclass(frozen=True)
class Reading:
    """One sample of one GPU."""

    t: float
    power_w: float
    counter_mj: int | None


@dataclass(frozen=True)
class MeterState:
    """The previous sample of one GPU, enough to compute the next delta.

    `counter_since` is the time of the last sample that still showed the counter's value before its latest advance:
    the energy of the next advance was drawn after it. None (a state file written before this field): `t`.
    """

    t: float
    power_w: float
    counter_mj: int | None
    counter_since: float | None = None


@dataclass(frozen=True)
class Delta:
    joules: float
    method: str  # "counter", "counter-reset", "integrated", "glitch", "first"
    gap: bool = False


def energy_delta(prev: MeterState | None, now: Reading, max_power_w: float, max_gap_s: float = 30.0) -> Delta:
    """Energy the GPU used between `prev` and `now`."""
    if prev is None:
        return Delta(0.0, "first")
    dt = max(0.0, now.t - prev.t)
    integrated, gap = _integrate(prev, now, dt, max_gap_s)
    if now.counter_mj is not None and prev.counter_mj is not None:
        if now.counter_mj >= prev.counter_mj:
            joules = (now.counter_mj - prev.counter_mj) / 1000
            since = prev.t if prev.counter_since is None else min(prev.counter_since, prev.t)
            if joules <= max_power_w * max(now.t - since, 1e-9) * PLAUSIBLE_MARGIN + 1.0:
                return Delta(joules, "counter")
            return Delta(integrated, "glitch", gap)
        since_reset = now.counter_mj / 1000
        if since_reset <= max_power_w * max(dt, 1e-9) * PLAUSIBLE_MARGIN + 1.0:
            return Delta(since_reset, "counter-reset")
        return Delta(integrated, "glitch", gap)
    return Delta(integrated, "integrated", gap)


def _integrate(prev: MeterState, now: Reading, dt: float, max_gap_s: float) -> tuple[float, bool]:
    if dt > max_gap_s:
        return now.power_w * max_gap_s, True
    return (prev.power_w + now.power_w) / 2 * dt, False


def meter_state(prev: MeterState | None, reading: Reading) -> MeterState:
    """The state after `reading`: when its counter moved, the energy of the next advance is drawn after now."""
    if prev is None or reading.counter_mj is None or reading.counter_mj != prev.counter_mj:
        since = reading.t if prev is None else prev.t
    else:
        since = prev.t if prev.counter_since is None else prev.counter_since
    return MeterState(t=reading.t, power_w=reading.power_w, counter_mj=reading.counter_mj, counter_since=since)


@dataclass(frozen=True)
class PodRef:
    """The identity energy is attributed to."""

    namespace: str
    name: str
    uid: str
    llmjob: str = ""


@dataclass(frozen=True)
class EnergyLedger:
    """Cumulative joules per (GPU index, owner); owner None is the idle bucket. Immutable: `add` returns a new one."""

    gpu_pod_joules: Mapping[tuple[int, PodRef | None], float]

    @classmethod
    def empty(cls) -> EnergyLedger:
        return cls({})

    def add(self, deltas: Mapping[int, float], owners: Mapping[int, PodRef | None]) -> EnergyLedger:
        out = dict(self.gpu_pod_joules)
        for gpu, joules in deltas.items():
            key = (gpu, owners.get(gpu))
            out[key] = out.get(key, 0.0) + joules
        return replace(self, gpu_pod_joules=out)

    def pod_joules(self, pod: PodRef) -> float:
        return sum(j for (_, p), j in self.gpu_pod_joules.items() if p == pod)

    def pods(self) -> set[PodRef]:
        return {p for (_, p) in self.gpu_pod_joules if p is not None}

    def without(self, pods: set[PodRef]) -> EnergyLedger:
        """Drop pods (after their retention): their joules stay in the report history, not in live metrics."""
        return replace(self, gpu_pod_joules={k: v for k, v in self.gpu_pod_joules.items() if k[1] not in pods})
