"""The one GPU catalog: every product's names, power and curves agree wherever they are read (issue 17)."""

from __future__ import annotations

import pytest

from llmasos.gpus.curves import PRODUCT_KEYS, load_curves, load_product
from llmasos.gpus.data import read_csv
from llmasos.gpus.products import (
    DEFAULT_CATALOG,
    LIMITS_FILE,
    PRODUCTS,
    REFERENCE_PRODUCT,
    GpuProduct,
    build_catalog,
    limits,
    normalize,
    product,
)

IDS = [p.key for p in PRODUCTS]


@pytest.mark.parametrize("entry", PRODUCTS, ids=IDS)
def test_every_name_of_a_product_maps_to_its_key(entry: GpuProduct) -> None:
    nvml = limits(entry.key).nvml_name
    label = nvml.replace(" ", "-")  # GPU Feature Discovery's nvidia.com/gpu.product
    names = {entry.key, entry.key.upper(), *entry.aliases, nvml, label, f"{label}-SHARED"}
    assert {n: normalize(n) for n in names} == dict.fromkeys(names, entry.key)
    assert product(nvml) is entry


@pytest.mark.parametrize("entry", PRODUCTS, ids=IDS)
def test_planner_power_is_the_nvml_default_limit(entry: GpuProduct) -> None:
    lim = limits(entry.key)
    row = next(r for r in read_csv(LIMITS_FILE) if r["gpu"] == entry.limits_row)
    assert lim.default_w == float(row["default_power_limit_w"])
    assert 0 < lim.min_w <= lim.default_w <= lim.max_w
    assert DEFAULT_CATALOG[entry.key].power_watts == lim.default_w
    assert DEFAULT_CATALOG[entry.key].relative_throughput == entry.relative_throughput


@pytest.mark.parametrize("entry", PRODUCTS, ids=IDS)
def test_accounting_and_the_simulator_use_the_planners_product(entry: GpuProduct) -> None:
    if entry.curves is None:
        with pytest.raises(KeyError, match="no power curves"):
            load_product(entry.key)
        return
    p = load_product(limits(entry.key).nvml_name.replace(" ", "-"))  # as a node label names it
    lim = limits(entry.key)
    assert (p.key, p.min_w, p.default_w, p.max_w) == (entry.key, lim.min_w, lim.default_w, lim.max_w)
    assert p.default_w == DEFAULT_CATALOG[entry.key].power_watts
    assert p.workloads == load_curves()[entry.curves]
    assert p.scaled == entry.scaled


def test_h100_pcie_is_its_own_350_watt_product_everywhere() -> None:
    """The disagreement issue 17 found: the agent's mapping made every H100 a 700 W SXM5."""
    assert normalize("NVIDIA-H100-PCIe") == "nvidia-h100-pcie"
    assert DEFAULT_CATALOG["nvidia-h100-pcie"].power_watts == 350
    p = load_product("NVIDIA-H100-PCIe")
    assert (p.key, p.max_w, p.default_w) == ("nvidia-h100-pcie", 350, 350)
    assert load_product("NVIDIA-H100-80GB-HBM3").max_w == 700


def test_names_are_unique_and_the_reference_is_known() -> None:
    keys = [p.key for p in PRODUCTS]
    aliases = [a for p in PRODUCTS for a in p.aliases]
    assert len(set(keys)) == len(keys)
    assert len(set(aliases)) == len(aliases)
    assert not set(keys) & set(aliases)
    # stored in normal form (lowercase, dashed, prefixed), or no name could ever match them
    assert all(a == a.lower() and not set(a) & {" ", "_"} and a.startswith(("nvidia-", "tesla-")) for a in aliases)
    assert REFERENCE_PRODUCT in DEFAULT_CATALOG
    assert set(PRODUCT_KEYS) == {p.key for p in PRODUCTS if p.curves}


@pytest.mark.parametrize("name", ["NVIDIA H100 NVL", "A100", "NVIDIA-B200", "nvidia-a100-sxm4-80gb-mig-1g.10gb"])
def test_an_unknown_name_is_never_guessed_from_its_tokens(name: str) -> None:
    assert normalize(name) not in DEFAULT_CATALOG
    with pytest.raises(KeyError, match="not in the catalog"):
        product(name)
    with pytest.raises(KeyError):
        load_product(name)


def test_catalog_overrides_normalise_names_and_keep_unset_fields() -> None:
    catalog = build_catalog({"NVIDIA-L4": {"powerWatts": 60}, "NVIDIA B200": {"relativeThroughput": 5,
                                                                             "powerWatts": 1000}})
    assert catalog["nvidia-l4"].power_watts == 60
    assert catalog["nvidia-l4"].relative_throughput == DEFAULT_CATALOG["nvidia-l4"].relative_throughput
    assert catalog["nvidia-b200"].power_watts == 1000
    with pytest.raises(ValueError, match="needs relativeThroughput"):
        build_catalog({"nvidia-x": {"powerWatts": 1}})
