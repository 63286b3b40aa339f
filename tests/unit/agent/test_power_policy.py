"""Policy math, clamping, and the energyOptimal state machine driven by the measured curves (no agent, no sim)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from llmasos.agent.power_policy import (
    BASELINE,
    PROFILE,
    REFINE,
    SETTLED,
    GpuLimits,
    PowerSpec,
    Probe,
    Sample,
    SearchSettings,
    SearchState,
    advance,
    start_search,
    static_limit,
)
from llmasos.errors import SpecError
from llmasos.gpus.curves import WorkloadCurve, load_product

A100 = GpuLimits(min_w=100, max_w=400, default_w=400)
FAST = SearchSettings(warmup_s=5, window_s=30, recheck_s=1e9)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, PowerSpec()),
        ({"policy": "none"}, PowerSpec()),
        ({"policy": "limit", "limitWatts": 250}, PowerSpec("limit", limit_watts=250)),
        ({"policy": "fraction", "fraction": 0.8}, PowerSpec("fraction", fraction=0.8)),
        ({"policy": "energyOptimal"}, PowerSpec("energyOptimal", max_slowdown=1.10)),
        ({"policy": "energyOptimal", "maxSlowdown": 1.5}, PowerSpec("energyOptimal", max_slowdown=1.5)),
    ],
)
def test_power_spec_parses(raw: dict[str, object] | None, expected: PowerSpec) -> None:
    assert PowerSpec.from_mapping(raw) == expected


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"policy": "turbo"}, "spec.power.policy"),
        ({"policy": "limit"}, "spec.power.limitWatts"),
        ({"policy": "limit", "limitWatts": -5}, "spec.power.limitWatts"),
        ({"policy": "limit", "limitWatts": True}, "spec.power.limitWatts"),
        ({"policy": "fraction"}, "spec.power.fraction"),
        ({"policy": "fraction", "fraction": 0.05}, "spec.power.fraction"),
        ({"policy": "fraction", "fraction": 1.2}, "spec.power.fraction"),
        ({"policy": "energyOptimal", "maxSlowdown": 0.9}, "spec.power.maxSlowdown"),
        ({"policy": "energyOptimal", "maxSlowdown": 2.5}, "spec.power.maxSlowdown"),
        ({"policy": "energyOptimal", "maxSlowdown": "1.1"}, "spec.power.maxSlowdown"),
    ],
)
def test_power_spec_rejects(raw: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        PowerSpec.from_mapping(raw)
    assert err.value.field == field


def test_power_spec_round_trips() -> None:
    spec = PowerSpec("fraction", fraction=0.7, max_slowdown=1.2)
    assert PowerSpec.from_mapping(spec.to_mapping()) == spec


@pytest.mark.parametrize(
    ("watts", "expected"), [(50, 100), (100, 100), (250.4, 250), (250.6, 251), (400, 400), (900, 400)]
)
def test_clamp_to_nvml_range(watts: float, expected: float) -> None:
    assert A100.clamp(watts) == expected


def test_limits_reject_inconsistent_constraints() -> None:
    with pytest.raises(ValueError, match="min <= default <= max"):
        GpuLimits(min_w=200, max_w=400, default_w=150)


@pytest.mark.parametrize(
    ("product", "spec", "expected"),
    [
        ("nvidia-a100-80gb", PowerSpec(), 400),
        ("nvidia-a100-80gb", PowerSpec("fraction", fraction=0.8), 320),
        ("nvidia-a100-80gb", PowerSpec("limit", limit_watts=50), 100),  # below NVML min: clamped up
        ("nvidia-h100-80gb", PowerSpec("limit", limit_watts=1000), 700),  # above NVML max: clamped down
        ("nvidia-h100-80gb", PowerSpec("fraction", fraction=0.75), 525),
        ("nvidia-l4", PowerSpec("fraction", fraction=0.5), 40),  # 36 W < L4 min 40 W
        ("nvidia-l4", PowerSpec("limit", limit_watts=60), 60),
        ("nvidia-a100-80gb", PowerSpec("energyOptimal"), 400),  # starts with the baseline at the default
    ],
)
def test_static_limit_per_product(product: str, spec: PowerSpec, expected: float) -> None:
    p = load_product(product)
    assert static_limit(spec, GpuLimits(p.min_w, p.max_w, p.default_w)) == expected


# ------------------------------------------------------------------------------------------- energyOptimal search
class Workload:
    """Cumulative counters of one GPU following a measured curve at whatever limit the search asks for."""

    def __init__(self, curve: WorkloadCurve, limits: GpuLimits, noise: float = 0.0, seed: int = 0) -> None:
        self.curve, self.limits, self.noise = curve, limits, noise
        self.rng = random.Random(seed)
        self.t, self.energy, self.work = 0.0, 0.0, 0.0
        self.scale = 1.0  # multiplies throughput (a workload change)

    def rates(self, limit_w: float) -> tuple[float, float]:
        thr, power = self.curve.response(limit_w / self.limits.max_w)
        return self.curve.power_at_max * self.limits.max_w * power, thr * self.scale

    def step(self, limit_w: float, dt: float = 5.0) -> Sample:
        power, thr = self.rates(limit_w)
        self.t += dt
        self.energy += power * dt * (1 + self.rng.gauss(0, self.noise))
        self.work += thr * dt * (1 + self.rng.gauss(0, self.noise))
        return Sample(self.t, self.energy, self.work)


def drive(state: SearchState, wl: Workload, seconds: float) -> tuple[SearchState, list[str]]:
    phases = [state.phase]
    for _ in range(round(seconds / 5)):
        state = advance(state, wl.step(state.target_w))
        assert state.limits.min_w <= state.target_w <= state.limits.default_w
        if state.phase != phases[-1]:
            phases.append(state.phase)
    return state, phases


def best_in_hindsight(wl: Workload, bound: float) -> tuple[float, float, float]:
    """(limit, energy per work, throughput) of the lowest-energy whole-watt limit within the slowdown bound."""
    base = wl.rates(wl.limits.default_w)[1]
    grid = [(w, *wl.rates(w)) for w in range(int(wl.limits.min_w), int(wl.limits.default_w) + 1)]
    return min(((w, p / t, t) for w, p, t in grid if base / t <= bound), key=lambda x: x[1])


CASES = [(p, w.name) for p in ("nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-l4") for w in load_product(p).workloads]


@pytest.mark.parametrize(("product", "workload"), CASES)
def test_energy_optimal_converges_within_slowdown_and_near_best(product: str, workload: str) -> None:
    p = load_product(product)
    limits = GpuLimits(p.min_w, p.max_w, p.default_w)
    wl = Workload(p.workload(workload), limits, noise=0.005, seed=len(workload))
    state, phases = drive(start_search(limits, 1.10, 0.0, FAST), wl, 3600)
    assert phases[:2] == [BASELINE, PROFILE]
    assert phases[-1] == SETTLED
    assert REFINE in phases
    chosen = state.target_w
    power, thr = wl.rates(chosen)
    base_thr = wl.rates(limits.default_w)[1]
    _, best_e, _ = best_in_hindsight(wl, 1.10)
    assert base_thr / thr <= 1.10, f"true slowdown {base_thr / thr:.4f} at {chosen} W"
    assert (power / thr) / best_e <= 1.03, f"{chosen} W uses {(power / thr) / best_e:.4f}x the best energy"


def test_tighter_bound_keeps_a_higher_limit() -> None:
    p = load_product("nvidia-a100-80gb")
    limits = GpuLimits(p.min_w, p.max_w, p.default_w)
    loose, _ = drive(start_search(limits, 1.20, 0.0, FAST), Workload(p.workload("bloom-3b"), limits), 3600)
    tight, _ = drive(start_search(limits, 1.02, 0.0, FAST), Workload(p.workload("bloom-3b"), limits), 3600)
    assert tight.phase == loose.phase == SETTLED
    assert tight.target_w > loose.target_w


def test_no_progress_takes_no_decision_and_stalls_restart_the_window() -> None:
    state = start_search(A100, 1.1, 0.0, FAST)
    for t in range(5, 600, 5):
        state = advance(state, Sample(float(t), energy_j=300.0 * t, work=42.0))
    assert state.phase == BASELINE
    assert state.baseline is None
    assert state.window is not None
    assert state.window.start.t >= 600 - 5 - FAST.stall_s


def test_counters_going_backwards_reopen_the_window() -> None:
    state = start_search(A100, 1.1, 0.0, FAST)
    state = advance(state, Sample(10.0, 1000.0, 50.0))
    state = advance(state, Sample(20.0, 2000.0, 60.0))
    state = advance(state, Sample(30.0, 3000.0, 5.0))  # the worker restarted from a checkpoint
    assert state.window is not None
    assert state.window.start == Sample(30.0, 3000.0, 5.0)


def test_noise_aware_feasibility() -> None:
    state = replace(start_search(A100, 1.10, 0.0, FAST), baseline=Probe(400, 1.0, 300, 60, rel_se=0.0))
    assert state.feasible(Probe(300, 1 / 1.095, 250, 60, rel_se=0.0))
    assert not state.feasible(Probe(300, 1 / 1.095, 250, 60, rel_se=0.01))
    assert not state.feasible(Probe(300, 1 / 1.11, 250, 60))


def test_throughput_drift_restarts_the_search_but_one_pause_does_not() -> None:
    p = load_product("nvidia-a100-80gb")
    limits = GpuLimits(p.min_w, p.max_w, p.default_w)
    wl = Workload(p.workload("gpt3-xl"), limits)
    state, _ = drive(start_search(limits, 1.10, 0.0, FAST), wl, 3600)
    assert state.phase == SETTLED
    assert state.searches == 1
    wl.scale = 0.5
    state, _ = drive(state, wl, 40)  # one drifted window
    assert state.phase == SETTLED
    assert state.drifted == 1
    wl.scale = 1.0
    state, _ = drive(state, wl, 40)
    assert state.phase == SETTLED
    assert state.drifted == 0
    wl.scale = 0.5
    state, _ = drive(state, wl, 80)
    assert state.searches == 2
    assert state.phase in (BASELINE, PROFILE)


def test_periodic_recheck_re_measures_and_settles_again() -> None:
    p = load_product("nvidia-h100-80gb")
    limits = GpuLimits(p.min_w, p.max_w, p.default_w)
    wl = Workload(p.workload("t5-3b"), limits)
    settings = replace(FAST, recheck_s=1800)
    state, _ = drive(start_search(limits, 1.10, 0.0, settings), wl, 1700)
    first = state.target_w
    assert state.phase == SETTLED
    state, phases = drive(state, wl, 1800)
    assert state.searches == 2
    assert state.recheck
    assert BASELINE in phases
    assert phases[-1] == SETTLED
    assert abs(state.target_w - first) <= settings.step_fraction * limits.max_w


def test_profiling_stops_at_the_first_limit_beyond_the_bound() -> None:
    p = load_product("nvidia-a100-80gb")
    limits = GpuLimits(p.min_w, p.max_w, p.default_w)
    state, _ = drive(start_search(limits, 1.02, 0.0, FAST), Workload(p.workload("bloom-3b"), limits), 3600)
    step = FAST.step_fraction * limits.max_w
    assert state.phase == SETTLED
    assert min(probe.limit_w for probe in state.history) >= limits.default_w - 2 * step
