"""What power caps saved, per capped pod, as `CapRecord`s for `status.carbon.powerCapSavedKWh` (pure).

Two ways to know the uncapped energy of the same work:

* **Measured** (energyOptimal): the agent measured the slowdown `s` of the chosen limit against the default limit
  on this very job, so `accounting.power_cap_saved_kwh` uses `E x Pu / (Pc x s) - E`.
* **From the measured power-limit curves** (limit and fraction, which measure nothing, and energyOptimal before its
  search settled): Zeus (NSDI'23) and Perseus (SOSP'24) swept the power limit of real GPUs on training workloads and
  recorded the *energy per unit of work* at each limit relative to the maximum limit, e(f) with f = limit / max.
  Energy per work already contains the slowdown (a capped GPU draws less power for longer), so for the same work

      E_uncapped / E_capped = e(default / max) / e(limit / max)

  and the saving is `E_capped x (that ratio - 1)`. Which workload the job runs is unknown, so the ratio is the
  median over the product's measured workloads. Products without their own sweep borrow one by fraction of the
  maximum limit (docs/power.md lists which); a product with no curves at all gets no estimate, never a guess.

The caller (the accounting handler) loads the curves (llmasos.gpus.curves) and passes them in as functions, so this
module stays free of I/O and of the agent package.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmasos.api.energy_status import PodPower
from llmasos.planning.accounting.integral import AccountingError, CapRecord

RelEnergy = Callable[[float], float]  # energy per unit of work at fraction f of the max limit, relative to f = 1
CAPPING_POLICIES = ("limit", "fraction", "energyOptimal")


@dataclass(frozen=True)
class GpuCurves:
    """One GPU product's NVML limits and its measured workloads' energy-per-work curves."""

    max_w: float
    default_w: float
    energy_per_work: tuple[RelEnergy, ...]

    def __post_init__(self) -> None:
        if not (self.max_w > 0 and 0 < self.default_w <= self.max_w):
            raise AccountingError(f"GPU limits must satisfy 0 < default <= max, got {self.default_w}/{self.max_w}")


def uncapped_energy_ratio(curves: GpuCurves, limit_w: float, default_w: float | None = None) -> float | None:
    """E_uncapped / E_capped for the same work: the median over workloads of e(default / max) / e(limit / max).

    None without curves, or when the limit is not below the default (nothing was capped).
    """
    default = default_w or curves.default_w
    if not curves.energy_per_work or not limit_w > 0 or limit_w >= default:
        return None
    ratios = []
    for e in curves.energy_per_work:
        capped, uncapped = e(limit_w / curves.max_w), e(default / curves.max_w)
        if not (math.isfinite(capped) and math.isfinite(uncapped) and capped > 0 and uncapped > 0):
            raise AccountingError(f"energy-per-work curve gave {capped!r} / {uncapped!r}")
        ratios.append(uncapped / capped)
    return statistics.median(ratios)


def cap_records(pods: Iterable[PodPower], curves: GpuCurves | None) -> list[CapRecord]:
    """`status.power.pods` entries -> CapRecords for `power_cap_saved_kwh`.

    A pod counts when its policy capped (limit, fraction, energyOptimal), it drew energy, and its limit was below
    the default (`defaultWatts` from the agent, else the curves' default). energyOptimal with a measured slowdown
    uses the measurement; every other capped pod the curves (none: no record, so no saving is claimed).
    """
    out: list[CapRecord] = []
    for pod in pods:
        energy, limit = pod.energy_joules, pod.limit_watts
        default = pod.default_watts or (curves.default_w if curves else None)
        if pod.policy not in CAPPING_POLICIES or not energy or not limit or not default or limit >= default:
            continue
        slowdown = pod.slowdown if pod.policy == "energyOptimal" else None
        if slowdown is not None:  # a measured speed-up under a cap is noise: claim no more than "no slowdown"
            out.append(CapRecord(energy, limit, default, max(slowdown, 1.0)))
            continue
        ratio = uncapped_energy_ratio(curves, limit, default) if curves else None
        if ratio is not None:
            out.append(CapRecord(energy, limit, default, None, energy_ratio=ratio))
    return out
