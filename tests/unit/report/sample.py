"""A small, hand-checkable set of LLMJobs for report tests (numbers chosen so totals are easy to verify by hand)."""

from __future__ import annotations

from typing import Any


def llmjob(namespace: str, name: str, *, labels: dict[str, str] | None = None, team: str = "",
           model: dict[str, str] | None = None, carbon: dict[str, Any] | None = None,
           tokens: float | None = None, tokens_in_carbon: bool = True) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Succeeded" if carbon else "Pending", "pool": "a100", "zone": "DE",
                              "gpuProduct": "nvidia-a100-80gb", "startTime": "2024-03-06T02:00:00Z"}
    if carbon:
        status["carbon"] = carbon
        status["completionTime"] = "2024-03-06T05:00:00Z"
    if tokens is not None and carbon and tokens_in_carbon:  # where the operator writes them
        status["carbon"] = {**carbon, "tokens": tokens}
    elif tokens is not None:  # the older place, still read
        status["progress"] = {"tokens": tokens}
    return {
        "apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob",
        "metadata": {"namespace": namespace, "name": name, "labels": labels or {},
                     "creationTimestamp": "2024-03-06T00:00:00Z"},
        "spec": {"task": "train", "model": model or {"builtin": "gpt-small"},
                 **({"accounting": {"team": team}} if team else {})},
        "status": status,
    }


def carbon(kwh: float, facility: float, grams: float, run_now: float, avg: float, *, pool: float = 0.0,
           cap_kwh: float = 0.0, cost: float | None = None, currency: str = "EUR", source: str = "trace",
           factors: str = "lifecycle") -> dict[str, Any]:
    offset: dict[str, Any] = {"tonnes": grams / 1e6}
    if cost is not None:
        offset.update(cost=cost, currency=currency)
    return {"energyKWh": kwh, "facilityEnergyKWh": facility, "gCO2e": grams, "averageIntensity": avg,
            "runNowGCO2e": run_now, "savedGCO2e": run_now - grams, "poolChoiceSavedGCO2e": pool,
            "powerCapSavedKWh": cap_kwh, "method": "location-based", "emissionFactorType": factors,
            "source": source, "isEstimated": source == "electricitymaps", "offset": offset}


def sample_jobs() -> dict[str, Any]:
    """`kubectl get llmjobs -A -o json` shape. Totals: 17 kWh, 20.4 kWh facility, 4080 g, run-now 5000 g."""
    return {"apiVersion": "v1", "kind": "List", "items": [
        llmjob("ml", "train-a", labels={"llmasos.io/team": "nlp"},
               carbon=carbon(10, 12, 3000, 4000, 250, pool=200, cap_kwh=1.0, cost=0.24), tokens=1e6),
        llmjob("ml", "train-b", labels={"llmasos.io/team": "nlp"}, team="vision", model={"hfRepo": "meta/llama"},
               carbon=carbon(5, 6, 600, 600, 100, cost=0.048)),
        llmjob("research", "eval-c", model={"path": "/models/x"},
               carbon=carbon(2, 2.4, 480, 400, 200, cost=0.05, currency="USD", source="electricitymaps",
                             factors="direct"), tokens=5e5, tokens_in_carbon=False),
        llmjob("research", "pending-d"),
    ]}


def external_references(page: str) -> list[str]:
    """Every src/href/xlink:href/action attribute value in real tags that is not a same-page anchor, plus CSS url()
    and @import: what a browser could fetch."""
    import re
    from html.parser import HTMLParser

    found: list[str] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for name, value in attrs:
                if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data") and value and \
                        not value.startswith("#"):
                    found.append(f"<{tag} {name}={value}>")

    Collector().feed(page)
    found += re.findall(r"url\([^)]*\)|@import[^;]*", "\n".join(re.findall(r"<style[^>]*>(.*?)</style>", page, re.S)))
    return found
