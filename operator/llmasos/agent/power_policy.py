"""GPU power-limit policies as pure functions and one pure state machine, so every capping decision can be tested.

The node agent feeds measurements in and applies the limit that comes out; nothing here touches a GPU, a clock or
the network. Policies (LLMJob `spec.power.policy`):

- `none`: the GPU's default limit; `limit`: `limitWatts`; `fraction`: `fraction` x the GPU's maximum limit.
  Every target is clamped to the NVML minimum/maximum of that GPU.
- `energyOptimal`: Zeus's just-in-time power-limit profiling (You et al., NSDI'23), with the cost being energy per
  unit of work under a slowdown bound: measure the throughput and energy per unit of work at the default limit
  (the baseline), step the limit down, stop as soon as a step is slower than `maxSlowdown` x the baseline, refine
  around the best feasible limit with halved steps, then keep the lowest-energy limit whose slowdown is within the
  bound. While settled, a throughput drift of more than `drift_tolerance` restarts the search (the workload
  changed), and every `recheck_s` a short re-check re-measures the baseline and the neighbours of the chosen limit.

Throughput comes from the worker's progress counter (any monotone unit: steps, samples, tokens) and energy from the
GPUs' energy counters, both cumulative; see `Sample`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from llmasos.api.power import DEFAULT_MAX_SLOWDOWN as DEFAULT_MAX_SLOWDOWN
from llmasos.api.power import POLICIES as POLICIES
from llmasos.api.power import PowerSpec as PowerSpec


@dataclass(frozen=True)
class GpuLimits:
    """NVML power-limit constraints of one GPU, in watts."""

    min_w: float
    max_w: float
    default_w: float

    def __post_init__(self) -> None:
        if not 0 < self.min_w <= self.default_w <= self.max_w:
            raise ValueError(f"need 0 < min <= default <= max, got {self.min_w}/{self.default_w}/{self.max_w}")

    def clamp(self, watts: float) -> float:
        """The closest limit NVML will accept, rounded to whole watts (inside the range)."""
        return float(min(math.floor(self.max_w), max(math.ceil(self.min_w), round(watts))))


def static_limit(spec: PowerSpec, limits: GpuLimits) -> float:
    """Target limit for the policies that need no measurement; energyOptimal starts at the default (its baseline)."""
    if spec.policy == "limit" and spec.limit_watts is not None:
        return limits.clamp(spec.limit_watts)
    if spec.policy == "fraction" and spec.fraction is not None:
        return limits.clamp(spec.fraction * limits.max_w)
    return limits.default_w


# ---------------------------------------------------------------------------------------------- energyOptimal search


@dataclass(frozen=True)
class SearchSettings:
    """Knobs of the energyOptimal search; the defaults suit jobs of an hour or more."""

    warmup_s: float = 10.0  # discard this long after each limit change (clocks and progress settle)
    window_s: float = 60.0  # measure each limit at least this long ...
    baseline_windows: float = 2.0  # ... and the baseline this many windows (every slowdown is relative to it)
    stall_s: float = 300.0  # a window with no progress for this long is restarted (checkpoint, eval, data wait)
    step_fraction: float = 0.0625  # coarse step as a fraction of the maximum limit (25 W on a 400 W GPU)
    refine_rounds: int = 2  # halvings of the step around the best feasible limit
    drift_tolerance: float = 0.10  # settled throughput moving this much (relative) restarts the search
    recheck_s: float = 3600.0  # settled this long -> short re-check (baseline + neighbours of the chosen limit)
    past_minimum: float = 1.05  # stop stepping down once energy per work is this much above the best so far
    drift_windows: int = 2  # consecutive drifted windows needed (one checkpoint pause must not restart a search)
    confidence_z: float = 1.645  # a limit is feasible when slowdown x (1 + z x its relative standard error) <= bound


@dataclass(frozen=True)
class Sample:
    """Cumulative measurements of one pod at time `t`: energy of its GPUs [J] and the worker's progress.

    `work_t` is when the worker last advanced `work` (its own timestamp, when it exposes one): throughput is timed
    with it so that polling does not quantise progress; energy is timed with `t`.
    """

    t: float
    energy_j: float
    work: float
    work_t: float | None = None

    @property
    def progress_time(self) -> float:
        return self.t if self.work_t is None else self.work_t


@dataclass(frozen=True)
class Window:
    """An open measurement window: its first sample, the latest one, and running statistics (Welford) of the
    throughput between consecutive samples, whose standard error makes the slowdown test noise-aware."""

    start: Sample
    last: Sample
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, sample: Sample) -> Window:
        dt = sample.progress_time - self.last.progress_time
        if dt <= 0 or sample.work <= self.last.work:  # no new progress since the last sample: nothing to learn
            return replace(self, last=sample) if sample.progress_time > self.last.progress_time else self
        rate = (sample.work - self.last.work) / dt
        n = self.n + 1
        delta = rate - self.mean
        mean = self.mean + delta / n
        return Window(self.start, sample, n, mean, self.m2 + delta * (rate - mean))

    @property
    def rel_se(self) -> float:
        """Relative standard error of the mean throughput (0 with fewer than 3 intervals: nothing to estimate)."""
        if self.n < 3 or self.mean <= 0:
            return 0.0
        return math.sqrt(self.m2 / (self.n - 1) / self.n) / self.mean


@dataclass(frozen=True)
class Probe:
    """What one measurement window at one limit found."""

    limit_w: float
    throughput: float  # work units per second
    power_w: float  # mean power of the pod's GPUs together
    seconds: float
    rel_se: float = 0.0  # relative standard error of `throughput`

    @property
    def energy_per_work(self) -> float:
        return self.power_w / self.throughput


BASELINE, PROFILE, REFINE, SETTLED = "Baseline", "Profile", "Refine", "Settled"


@dataclass(frozen=True)
class SearchState:
    """Where the energyOptimal search of one pod stands; `target_w` is the limit to apply now."""

    limits: GpuLimits
    max_slowdown: float
    settings: SearchSettings
    phase: str
    target_w: float
    changed_at: float
    window: Window | None = None
    baseline: Probe | None = None
    probes: tuple[Probe, ...] = ()
    step_w: float = 0.0
    queue: tuple[float, ...] = ()
    rounds_left: int = 0
    chosen: Probe | None = None
    settled_at: float | None = None
    recheck: bool = False  # this round re-checks around `chosen` instead of a full sweep
    drifted: int = 0  # consecutive settled windows whose throughput drifted
    searches: int = 1
    history: tuple[Probe, ...] = field(default=(), repr=False)  # search probes of every round (last 64)

    def slowdown(self, probe: Probe) -> float:
        return 1.0 if self.baseline is None else self.baseline.throughput / probe.throughput

    def feasible(self, probe: Probe) -> bool:
        """Within the bound even if throughput was measured `confidence_z` standard errors too optimistic."""
        base_se = self.baseline.rel_se if self.baseline is not None else 0.0
        se = math.sqrt(probe.rel_se**2 + base_se**2)
        return self.slowdown(probe) * (1 + self.settings.confidence_z * se) <= self.max_slowdown

    def best(self) -> Probe | None:
        """Lowest energy per unit of work among the probes of this round within the slowdown bound."""
        ok = [p for p in self.probes if self.feasible(p)]
        return min(ok, key=lambda p: (p.energy_per_work, -p.limit_w)) if ok else None


def start_search(
    limits: GpuLimits, max_slowdown: float, now: float, settings: SearchSettings | None = None
) -> SearchState:
    """A fresh search: measure the baseline at the default limit first."""
    s = settings or SearchSettings()
    return SearchState(
        limits=limits,
        max_slowdown=max_slowdown,
        settings=s,
        phase=BASELINE,
        target_w=limits.default_w,
        changed_at=now,
        step_w=max(1.0, s.step_fraction * limits.max_w),
    )


def advance(state: SearchState, sample: Sample) -> SearchState:
    """Feed one cumulative sample; returns the next state (whose `target_w` may differ)."""
    s = state.settings
    win = state.window
    if win is None or sample.work < win.last.work or sample.energy_j < win.last.energy_j:
        # Not measuring yet, or counters went backwards (worker restarted): (re)open the window after warm-up.
        if sample.t >= state.changed_at + s.warmup_s:
            return replace(state, window=Window(sample, sample))
        return replace(state, window=None)
    win = win.add(sample)
    ws = win.start
    elapsed = sample.t - ws.t
    work_elapsed = sample.progress_time - ws.progress_time
    work = sample.work - ws.work
    need = s.window_s * (s.baseline_windows if state.phase == BASELINE else 1.0)
    if work <= 0 or work_elapsed <= 0:
        return replace(state, window=Window(sample, sample) if elapsed >= s.stall_s else win)
    if elapsed < need:
        return replace(state, window=win)
    probe = Probe(
        limit_w=state.target_w,
        throughput=work / work_elapsed,
        power_w=(sample.energy_j - ws.energy_j) / elapsed,
        seconds=elapsed,
        rel_se=win.rel_se,
    )
    if state.phase != SETTLED:  # monitoring windows while settled are not search probes
        state = replace(state, history=(*state.history, probe)[-64:])
    return _on_probe(state, probe, sample.t)


def _on_probe(state: SearchState, probe: Probe, now: float) -> SearchState:
    if state.phase == SETTLED:
        return _on_settled_probe(state, probe, now)
    if state.phase == BASELINE:
        state = replace(state, baseline=probe, probes=(probe,))
        if state.recheck and state.chosen is not None:
            return _refine(replace(state, probes=(probe,)), now, around=state.chosen.limit_w)
        return _next_profile(state, state.limits.default_w, now)
    state = replace(state, probes=(*state.probes, probe))
    if state.phase == PROFILE:
        best = state.best()
        past = best is not None and probe.energy_per_work > best.energy_per_work * state.settings.past_minimum
        if not state.feasible(probe) or past:
            return _refine(state, now)
        return _next_profile(state, probe.limit_w, now)
    return _next_refine(state, now)


def _next_profile(state: SearchState, last_w: float, now: float) -> SearchState:
    nxt = state.limits.clamp(last_w - state.step_w)
    if nxt >= last_w:  # reached the minimum
        return _refine(state, now)
    return _move(replace(state, phase=PROFILE), nxt, now)


def _refine(state: SearchState, now: float, around: float | None = None) -> SearchState:
    """Halve the step around the best feasible limit; a re-check (`around`) probes only the old choice +- step/4."""
    rounds = 0 if around is not None else state.settings.refine_rounds
    step = state.step_w / 4 if around is not None else state.step_w
    state = replace(state, phase=REFINE, rounds_left=rounds, step_w=step)
    if around is not None:
        return _next_refine(replace(state, queue=_neighbours(state, around, state.step_w)), now)
    return _next_refine(state, now)


def _neighbours(state: SearchState, center: float, step: float) -> tuple[float, ...]:
    cands = [state.limits.clamp(center), state.limits.clamp(center - step), state.limits.clamp(center + step)]
    top = state.limits.default_w
    tried = {round(p.limit_w) for p in state.probes}
    out: list[float] = []
    for c in cands:
        if c <= top and round(c) not in tried and c not in out:
            out.append(c)
    return tuple(out)


def _next_refine(state: SearchState, now: float) -> SearchState:
    while not state.queue:
        best = state.best()
        if best is None or state.rounds_left <= 0:
            return _settle(state, now)
        step = state.step_w / 2
        state = replace(state, step_w=step, rounds_left=state.rounds_left - 1)
        state = replace(state, queue=_neighbours(state, best.limit_w, step))
    head, *rest = state.queue
    return _move(replace(state, queue=tuple(rest)), head, now)


def _settle(state: SearchState, now: float) -> SearchState:
    best = state.best()
    old = state.chosen
    top = state.limits.default_w
    if state.recheck and old is not None and old.limit_w < top and (best is None or best.limit_w >= top):
        # The neighbourhood of the old choice no longer fits the bound (workload or noise): search afresh
        # rather than fall back to the default limit for good.
        fresh = start_search(state.limits, state.max_slowdown, now, state.settings)
        return replace(fresh, searches=state.searches + 1, history=state.history)
    chosen = best or state.baseline
    target = state.limits.default_w if chosen is None else chosen.limit_w
    return replace(state, phase=SETTLED, chosen=chosen, settled_at=now, target_w=target, changed_at=now, window=None)


def _on_settled_probe(state: SearchState, probe: Probe, now: float) -> SearchState:
    chosen = state.chosen
    if chosen is not None and abs(probe.throughput / chosen.throughput - 1.0) > state.settings.drift_tolerance:
        if state.drifted + 1 < state.settings.drift_windows:
            return replace(state, drifted=state.drifted + 1, window=None)
        fresh = start_search(state.limits, state.max_slowdown, now, state.settings)
        return replace(fresh, searches=state.searches + 1, history=state.history)
    if state.settled_at is not None and now - state.settled_at >= state.settings.recheck_s:
        step = max(1.0, state.settings.step_fraction * state.limits.max_w)
        return replace(
            state,
            phase=BASELINE,
            recheck=True,
            probes=(),
            queue=(),
            step_w=step,
            target_w=state.limits.default_w,
            changed_at=now,
            window=None,
            searches=state.searches + 1,
            drifted=0,
        )
    return replace(state, window=None, drifted=0)


def _move(state: SearchState, target: float, now: float) -> SearchState:
    return replace(state, target_w=target, changed_at=now, window=None)
