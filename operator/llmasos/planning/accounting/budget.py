"""Monthly carbon budgets per namespace (pure): how much a namespace has emitted this month, and what happens to a
new job when it is over budget — `hold` (it may only run in its lowest-carbon window within a day) or `reject`.

Usage counts `status.carbon.gCO2e` of the namespace's LLMJobs created in the same UTC calendar month.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

POLICIES = ("hold", "reject")


@dataclass(frozen=True)
class Budget:
    monthly_grams: float
    policy: str = "hold"

    def __post_init__(self) -> None:
        if self.monthly_grams < 0:
            raise ValueError("monthlyGrams must be >= 0")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")


def parse_budgets(raw: Mapping[str, Any]) -> dict[str, Budget]:
    """{namespace: {monthlyGrams, policy}} -> budgets; ValueError names the namespace."""
    out: dict[str, Budget] = {}
    for ns, item in raw.items():
        if not isinstance(item, Mapping) or "monthlyGrams" not in item:
            raise ValueError(f"carbon budget for namespace {ns!r} needs monthlyGrams")
        try:
            out[str(ns)] = Budget(float(item["monthlyGrams"]), str(item.get("policy", "hold")))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"carbon budget for namespace {ns!r}: {exc}") from None
    return out


def month_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def used_grams(entries: Iterable[tuple[str, str, float]], month: str) -> float:
    """Sum of (uid, month, grams) entries of one namespace for `month` (each uid counted once, latest value)."""
    latest: dict[str, float] = {}
    for uid, entry_month, grams in entries:
        if entry_month == month:
            latest[uid] = grams
    return sum(latest.values())


def verdict(budget: Budget | None, used: float) -> str:
    """"ok", or the budget's policy once the namespace has used all of it."""
    if budget is None or used < budget.monthly_grams:
        return "ok"
    return budget.policy
