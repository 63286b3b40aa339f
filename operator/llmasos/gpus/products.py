"""The GPU products LLMasOS knows: one key per product, every name it goes by, its speed and its power limits.

One table, read by the planner (pool choice: run time and energy per pool), by accounting (which measured curves
estimate a power cap's saving) and by the node agent's simulator. Before this table the planner and the agent each
had their own name mapping, and they disagreed: `NVIDIA-H100-PCIe` was a 350 W H100 PCIe to the planner and a 700 W
H100 SXM to the agent, so power-cap savings on H100 PCIe pools were estimated on the wrong GPU.

- **Names.** GPU Feature Discovery labels (`nvidia.com/gpu.product`, e.g. `NVIDIA-A100-SXM4-80GB`, with a
  `-SHARED` suffix under time-slicing), NVML product names (`NVIDIA A100-SXM4-80GB`) and GKE accelerator labels
  (`nvidia-tesla-t4`) all map onto the catalog key. A name the table does not know is never guessed from its
  tokens: the planner sees an unknown product, accounting claims no saving.
- **Power.** A product's power under training load is its NVML default power limit, read from
  `data/gpu-power/gpu_power_limits_nvml.csv` (with the `nvidia-smi -q` dump each limit comes from): a busy training
  GPU draws its default limit within ~10 %.
- **Throughput** relative to an A100 80GB SXM: deliberately round estimates from public MLPerf Training results for
  LLM pre-training and the cards' dense tensor throughput (docs/carbon.md). Operators override them through the
  `gpuCatalog` setting with their own measurements.
- **Curves.** Which measured power-limit sweep answers a cap on this product (`gpus/curves.py`); `scaled` when it
  is borrowed from another GPU by fraction of the maximum limit; None when no sweep fits (no saving is estimated).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from llmasos.gpus.data import read_csv

REFERENCE_PRODUCT = "nvidia-a100-80gb"
LIMITS_FILE = "gpu_power_limits_nvml.csv"
A100_PCIE = "A100 80GB PCIe (300W)"  # Perseus (SOSP'24) sweep, LLM training
A40 = "A40 48GB (300W)"  # Perseus sweep and the Zeus (NSDI'23) median
V100 = "V100 (PCIe, 250W max; inferred from PL range)"  # Zeus median


@dataclass(frozen=True, slots=True)
class GpuProduct:
    """One catalog entry. `limits_row` is its row (the `gpu` column) of the NVML limits file."""

    key: str
    relative_throughput: float
    limits_row: str
    curves: str | None
    scaled: bool
    aliases: tuple[str, ...] = ()


PRODUCTS: tuple[GpuProduct, ...] = (
    GpuProduct("nvidia-a100-80gb", 1.0, "A100 80GB SXM4", A100_PCIE, True,
               ("nvidia-a100-sxm4-80gb", "nvidia-a100-80gb-sxm", "nvidia-a100-sxm-80gb")),
    GpuProduct("nvidia-a100-40gb", 0.9, "A100 40GB SXM4", A100_PCIE, True,
               ("nvidia-a100-sxm4-40gb", "nvidia-a100-40gb-sxm", "nvidia-tesla-a100")),
    GpuProduct("nvidia-a100-80gb-pcie", 0.85, "A100 80GB PCIe", A100_PCIE, False, ("nvidia-a100-pcie-80gb",)),
    GpuProduct("nvidia-a100-40gb-pcie", 0.75, "A100 40GB PCIe", A100_PCIE, True, ("nvidia-a100-pcie-40gb",)),
    GpuProduct("nvidia-h100-80gb", 2.5, "H100 80GB SXM5", A100_PCIE, True,
               ("nvidia-h100-80gb-hbm3", "nvidia-h100-sxm5-80gb", "nvidia-h100-mega-80gb")),
    GpuProduct("nvidia-h100-pcie", 1.8, "H100 80GB PCIe", A100_PCIE, True,
               ("nvidia-h100-80gb-pcie", "nvidia-h100-pcie-80gb")),
    GpuProduct("nvidia-h200-141gb", 3.0, "H200 141GB SXM", A100_PCIE, True, ("nvidia-h200", "nvidia-h200-sxm-141gb")),
    GpuProduct("nvidia-l4", 0.3, "L4", A40, True),
    GpuProduct("nvidia-a40", 0.5, "A40", A40, False),
    GpuProduct("nvidia-t4", 0.12, "T4", None, False, ("tesla-t4", "nvidia-tesla-t4")),
    GpuProduct("nvidia-v100", 0.31, "V100 PCIe 16/32GB", V100, False,
               ("tesla-v100-pcie-16gb", "tesla-v100-pcie-32gb", "nvidia-v100-pcie")),
    GpuProduct("nvidia-v100-sxm2", 0.35, "V100 SXM2 16/32GB", V100, True,
               ("tesla-v100-sxm2-16gb", "tesla-v100-sxm2-32gb", "nvidia-tesla-v100")),
)
_BY_KEY: Mapping[str, GpuProduct] = MappingProxyType({p.key: p for p in PRODUCTS})
_ALIASES: Mapping[str, str] = MappingProxyType({a: p.key for p in PRODUCTS for a in p.aliases})


def normalize(name: str) -> str:
    """'NVIDIA-A100-SXM4-80GB', 'NVIDIA A100 80GB PCIe', 'Tesla T4' or 'nvidia-l4' -> the catalog key. A name the
    catalog does not know comes back lowercase and dashed with an `nvidia-` prefix (the key a settings override
    would use for it), never mapped onto a known product by resemblance."""
    key = re.sub(r"[\s_]+", "-", name.strip().lower())
    key = key.removesuffix("-shared")  # GPU Feature Discovery's label for a time-sliced GPU
    if not key.startswith(("nvidia-", "tesla-")):
        key = f"nvidia-{key}"
    return _ALIASES.get(key, key)


def product(name: str) -> GpuProduct:
    """The catalog entry for any name of a product; KeyError for a product the catalog does not know."""
    entry = _BY_KEY.get(normalize(name))
    if entry is None:
        raise KeyError(f"GPU product {name!r} is not in the catalog; known: {', '.join(_BY_KEY)}")
    return entry


@dataclass(frozen=True, slots=True)
class GpuLimits:
    """NVML power limits in watts, and the product name NVML reports."""

    min_w: float
    default_w: float
    max_w: float
    nvml_name: str


@cache
def limits(name: str) -> GpuLimits:
    """The NVML limits of a catalog product (from the shipped limits file); KeyError for an unknown product."""
    entry = product(name)
    row = next((r for r in read_csv(LIMITS_FILE) if r["gpu"] == entry.limits_row), None)
    if row is None:  # pragma: no cover - every catalog row is checked by tests/unit/gpus
        raise KeyError(f"{LIMITS_FILE} has no row {entry.limits_row!r}")
    return GpuLimits(float(row["nvml_min_power_limit_w"]), float(row["default_power_limit_w"]),
                     float(row["nvml_max_power_limit_w"]), row["nvml_product_name_typical"].split(" / ")[0])


@dataclass(frozen=True, slots=True)
class GpuProfile:
    """What the planner needs of a product: relative throughput (A100 80GB = 1.0) and power under training load."""

    product: str
    relative_throughput: float
    power_watts: float

    def __post_init__(self) -> None:
        if self.relative_throughput <= 0 or self.power_watts <= 0:
            raise ValueError(f"{self.product}: throughput and power must be positive")


DEFAULT_CATALOG: Mapping[str, GpuProfile] = MappingProxyType(
    {p.key: GpuProfile(p.key, p.relative_throughput, limits(p.key).default_w) for p in PRODUCTS}
)


def build_catalog(overrides: Mapping[str, Mapping[str, float]] | None = None) -> Mapping[str, GpuProfile]:
    """The default catalog with settings overrides merged in: {product: {relativeThroughput, powerWatts}}."""
    catalog = dict(DEFAULT_CATALOG)
    for raw_name, fields in (overrides or {}).items():
        name = normalize(raw_name)
        base = catalog.get(name)
        throughput = fields.get("relativeThroughput", base.relative_throughput if base else None)
        power = fields.get("powerWatts", base.power_watts if base else None)
        if throughput is None or power is None:
            raise ValueError(f"GPU catalog entry {raw_name!r} needs relativeThroughput and powerWatts")
        catalog[name] = GpuProfile(name, float(throughput), float(power))
    return MappingProxyType(catalog)
