"""Measured GPU power-limit response curves, per GPU product, for accounting, the simulator and the benchmark.

Data (operator/llmasos/data/gpu-power, Apache-2.0, see SOURCE.md there): relative throughput and relative energy
per unit of work versus power limit from Perseus (SOSP'24, A100 80GB PCIe and A40, LLM training) and Zeus (NSDI'23,
median over DNN training configs); the NVML min/max/default limits per product come from the catalog
(`gpus/products.py`), which also says which measured GPU's curves each product uses.

Products without a measured curve borrow one, by *fraction of the maximum limit* (a limit at 80 % of max behaves as
the measured GPU did at 80 % of its max). This is an assumption, stated wherever it is used (docs/power.md lists
which product borrows from which).

Below the lowest measured fraction f0 the curve is extrapolated: power follows the cap (P ~ f) and throughput
falls as (f / f0)^k, k being the log-log slope of the two lowest measured points (clamped to 1..3).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from llmasos.gpus.data import read_csv
from llmasos.gpus.products import PRODUCTS, limits, product


@dataclass(frozen=True, order=True)
class CurvePoint:
    fraction: float  # power limit / maximum limit
    rel_throughput: float  # throughput / throughput at the maximum limit
    rel_energy: float  # energy per unit of work / that at the maximum limit


@dataclass(frozen=True)
class WorkloadCurve:
    """How one measured workload responded to the power limit, relative to its maximum limit."""

    name: str
    source: str
    points: tuple[CurvePoint, ...]  # ascending fraction, last one at 1.0
    power_at_max: float  # mean power at the maximum limit / maximum limit

    def response(self, fraction: float) -> tuple[float, float]:
        """(relative throughput, relative power) at `fraction` of the maximum limit."""
        pts = self.points
        f = min(1.0, fraction)
        if f <= pts[0].fraction:
            p0, p1 = pts[0], pts[1]
            slope = math.log(p1.rel_throughput / p0.rel_throughput) / math.log(p1.fraction / p0.fraction)
            k = min(3.0, max(1.0, slope))
            ratio = f / p0.fraction
            return p0.rel_throughput * ratio**k, p0.rel_throughput * p0.rel_energy * ratio
        for lo, hi in itertools.pairwise(pts):
            if lo.fraction <= f <= hi.fraction:
                w = (f - lo.fraction) / (hi.fraction - lo.fraction)
                thr = lo.rel_throughput + w * (hi.rel_throughput - lo.rel_throughput)
                energy = lo.rel_energy + w * (hi.rel_energy - lo.rel_energy)
                return thr, thr * energy
        return pts[-1].rel_throughput, pts[-1].rel_throughput * pts[-1].rel_energy

    def energy_per_work(self, fraction: float) -> float:
        thr, power = self.response(fraction)
        return power / thr


@dataclass(frozen=True)
class Product:
    """A GPU product as the simulator models it."""

    key: str
    nvml_name: str
    min_w: float
    max_w: float
    default_w: float
    curve_source: str  # which measured GPU's curves it uses
    scaled: bool  # True when the curves come from another product (see the module docstring)
    workloads: tuple[WorkloadCurve, ...]

    def workload(self, name: str) -> WorkloadCurve:
        for w in self.workloads:
            if w.name == name:
                return w
        raise KeyError(f"{self.key} has no workload {name!r}; known: {', '.join(w.name for w in self.workloads)}")


PRODUCT_KEYS = tuple(p.key for p in PRODUCTS if p.curves is not None)  # products with curves


def _perseus_power_at_max() -> dict[tuple[str, str], float]:
    """Mean per-GPU power at the maximum limit, from the raw Perseus files: energy / time / GPUs / max limit."""
    out: dict[tuple[str, str], float] = {}
    for gpu, fname in (
        ("A100 80GB PCIe (300W)", "A100-80G-PCIe_zeus_global_power_limit.csv"),
        ("A40 48GB (300W)", "A40-48G_zeus_global_power_limit.csv"),
    ):
        for row in read_csv(fname):
            gpus = int(row["dp"]) * int(row["tp"]) * int(row["pp"])
            if float(row["power_limit_0"]) == 300.0:
                out[(gpu, row["model_name"])] = float(row["energy"]) / float(row["time"]) / gpus / 300.0
    return out


@cache
def load_curves() -> dict[str, tuple[WorkloadCurve, ...]]:
    """Workload curves per measured GPU (the `gpu` column of the summary)."""
    absolute = _perseus_power_at_max()
    grouped: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in read_csv("power_limit_response_summary.csv"):
        perseus = row["source"].startswith("perseus")
        name = row["workload"].split(" ")[0] if perseus else "zeus-median"
        grouped[(row["gpu"], name)].append(row)
    curves: dict[str, list[WorkloadCurve]] = defaultdict(list)
    for (gpu, name), rows in grouped.items():
        max_w = float(rows[0]["max_power_limit_w"])
        pts = sorted(
            CurvePoint(float(r["power_limit_w"]) / max_w, float(r["rel_throughput"]), float(r["rel_energy_per_work"]))
            for r in rows
        )
        top = next(r for r in rows if float(r["power_limit_w"]) == max_w)
        power = absolute.get((gpu, name)) or float(top["avg_power_w"] or "nan") / max_w
        curves[gpu].append(WorkloadCurve(name, f"{rows[0]['source']} ({gpu})", tuple(pts), power))
    return {gpu: tuple(sorted(ws, key=lambda w: w.name)) for gpu, ws in curves.items()}


@cache
def load_product(name: str) -> Product:
    """Any name of a catalog product -> its limits and curves; KeyError for an unknown product or one with no curves
    (the simulator cannot model it, accounting claims no saving for it)."""
    entry = product(name)
    if entry.curves is None:
        raise KeyError(f"no power curves for GPU product {name!r}; products with curves: {', '.join(PRODUCT_KEYS)}")
    lim = limits(entry.key)
    return Product(
        key=entry.key,
        nvml_name=lim.nvml_name,
        min_w=lim.min_w,
        max_w=lim.max_w,
        default_w=lim.default_w,
        curve_source=entry.curves,
        scaled=entry.scaled,
        workloads=load_curves()[entry.curves],
    )
