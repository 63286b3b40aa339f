"""What the report's numbers mean: the formulas, the data shipped with LLMasOS and its licenses, and the choices
(location- vs market-based, lifecycle vs direct factors, PUE) that a reader needs before quoting a figure.

The data section is read from `llmasos/data/**` at report time (each folder's SOURCE.md and LICENSE files), so the
report cannot drift from what is actually shipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable


@dataclass(frozen=True)
class DataSource:
    folder: str
    title: str
    licenses: tuple[tuple[str, str], ...]  # (file, license id)
    text: str


_LICENSE_IDS = (("apache", "Apache-2.0"), ("mit", "MIT"), ("bsd", "BSD"), ("cc-by", "CC-BY"))


def license_id(filename: str, text: str) -> str:
    """Apache-2.0 / MIT / ... from the file name, else from the first lines of the license text."""
    for haystack in (filename.lower(), text[:400].lower()):
        for needle, spdx in _LICENSE_IDS:
            if needle in haystack:
                return spdx
    return "see file"


def _walk(folder: Traversable, prefix: str) -> list[DataSource]:
    out: list[DataSource] = []
    children = sorted(folder.iterdir(), key=lambda t: t.name)
    source = next((c for c in children if c.name == "SOURCE.md"), None)
    licenses: list[tuple[str, str]] = []
    for sub in children:
        if sub.is_dir():
            for child in sorted(sub.iterdir(), key=lambda t: t.name):
                if child.name.upper().startswith("LICENSE"):
                    licenses.append((f"{sub.name}/{child.name}", license_id(child.name, child.read_text())))
        elif sub.name.upper().startswith("LICENSE"):
            licenses.append((sub.name, license_id(sub.name, sub.read_text())))
    if source is not None:
        text = source.read_text()
        title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), prefix)
        out.append(DataSource(prefix, title, tuple(licenses), text))
    for sub in children:
        if sub.is_dir() and any(c.name == "SOURCE.md" for c in sub.iterdir()):
            out.extend(_walk(sub, f"{prefix}/{sub.name}"))
    return out


def data_sources() -> list[DataSource]:
    root = resources.files("llmasos") / "data"
    return [s for sub in sorted(root.iterdir(), key=lambda t: t.name) if sub.is_dir()
            for s in _walk(sub, f"data/{sub.name}")]


FORMULAS: tuple[tuple[str, str], ...] = (
    ("Emissions", "gCO2e = sum over run pieces p of E_p [kWh] x PUE(t_p) x I_zone(t_p) [gCO2e/kWh]. E_p is metered "
     "GPU energy (NVML counter, by the node agent) between two readings, spread evenly over that interval's run time "
     "and split wherever the intensity series or the PUE steps; pauses of interruptible jobs carry no energy."),
    ("Facility energy", "facilityEnergyKWh = sum over pieces of E_p x PUE(t_p); energyKWh is the IT (GPU) energy."),
    ("Average intensity", "averageIntensity = gCO2e / facilityEnergyKWh: the energy-weighted intensity the job met."),
    ("Intensity gaps", "Where the zone's series has no value, the energy is valued at the zone's annual static factor "
     "(or the mean of the known part of the run) and the job is marked isEstimated."),
    ("Time shifting", "runNowGCO2e: the same energy profile, pauses removed, started at submission, on the same series "
     "and PUE; saved = runNowGCO2e - gCO2e (negative when waiting cost carbon), percent = saved / runNowGCO2e."),
    ("Pool choice", "poolChoiceSavedGCO2e = gCO2e x (planned gCO2e on the first listed pool that fits / planned "
     "gCO2e on the chosen pool - 1), both planned in the same pass."),
    ("Power caps", "powerCapSavedKWh = E x P_uncapped / (P_capped x slowdown) - E per capped pod, with the measured "
     "slowdown of energyOptimal; for limit and fraction caps, E x (e(default) / e(cap) - 1), e being the measured "
     "energy per unit of work of the GPU product at that limit (Zeus, Perseus sweeps); no saving is claimed for a "
     "product without such curves. In grams at the job's PUE and average intensity. Negative when the cap cost "
     "energy: far below a GPU's maximum a cap slows the work more than it lowers the power."),
    ("Energy per token", "J/token = energyKWh x 3.6e6 / tokens, over the jobs whose workers reported tokens."),
    ("Offsets", "tonnes = gCO2e / 1e6; cost = tonnes x the configured price per tonne, summed per currency."),
)

CHOICES: tuple[tuple[str, str], ...] = (
    ("Location-based, not market-based", "Every figure uses the grid's average intensity where and when the energy "
     "was drawn (GHG Protocol Scope 2 location-based method). Renewable energy certificates, PPAs and supplier-"
     "specific factors (market-based) are not applied; LLMasOS computes no market-based figure."),
    ("Lifecycle vs direct factors", "Lifecycle factors include upstream emissions of each generator (construction, "
     "fuel supply; Electricity Maps' default); direct factors count combustion only and are lower. "
     "Each job records its emissionFactorType: do not add or compare the two kinds without saying so."),
    ("PUE", "Power usage effectiveness scales IT energy to facility energy (cooling, power distribution). It comes "
     "from spec.accounting.pue or the operator's defaultPue; the report lists the range used. Not included: energy of "
     "idle GPUs (metered by the agents, owned by no job), CPUs, memory, network and storage."),
)
