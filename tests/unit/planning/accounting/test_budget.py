"""Monthly carbon budgets: usage per month, each job counted once, policies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmasos.planning.accounting.budget import Budget, month_key, parse_budgets, used_grams, verdict


def test_usage_counts_each_job_once_in_its_month() -> None:
    entries = [("a", "2026-11", 100.0), ("a", "2026-11", 150.0), ("b", "2026-11", 50.0), ("c", "2026-10", 999.0)]
    assert used_grams(entries, "2026-11") == 200.0
    assert month_key(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == "2026-11"


@pytest.mark.parametrize(("used", "policy", "expected"), [(99.0, "hold", "ok"), (100.0, "hold", "hold"),
                                                          (150.0, "reject", "reject")])
def test_verdict(used: float, policy: str, expected: str) -> None:
    assert verdict(Budget(100.0, policy), used) == expected
    assert verdict(None, used) == "ok"


@pytest.mark.parametrize(("raw", "message"), [({"ml": {}}, "needs monthlyGrams"),
                                              ({"ml": {"monthlyGrams": -1}}, ">= 0"),
                                              ({"ml": {"monthlyGrams": 5, "policy": "nag"}}, "policy")])
def test_bad_budgets_name_the_namespace(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_budgets(raw)

