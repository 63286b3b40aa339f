"""What the report says about power caps, in a user's words, including when a cap cost energy.

A negative power-cap saving is not a sign error: the saving compares the capped run with the same work at the GPU's
default limit, on measured power-limit curves (or energyOptimal's own measurement). Below a GPU's efficient range a
cap slows the work more than it lowers the power, so the same work takes *more* energy (`make demo`'s 250 W cap on
an A100 80GB, 62 % of its 400 W maximum, cost about 2 %; at 300 W it saves about 8 %). Printing "saved -0.1 g" hides
that; the report names the cost and the jobs that paid it instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmasos.report.model import JobRecord

# Rounded to what the report prints: a cost that rounds to zero grams is no cost worth explaining.
SHOWN = 0.05
ADVICE = ("a cap far below a GPU's maximum slows the work more than it lowers the power, so the same work took more "
          "energy than uncapped; caps near 75-85 % of the maximum save most on the measured curves, and "
          "policy energyOptimal finds that limit by measuring (docs/power.md)")


def costly_jobs(jobs: Iterable[JobRecord]) -> list[str]:
    """namespace/name of every job whose power cap cost more energy than it saved."""
    return [f"{j.namespace}/{j.name}" for j in jobs if j.power_cap_saved_kwh < 0]


def cap_cost(grams: float) -> bool:
    """True when the power-cap total is a visible cost (it would print as a negative saving)."""
    return grams <= -SHOWN


def cap_clause(grams: float) -> str:
    """The summary's words for the power-cap total: 'saved 1.2 g by power caps' or 'power caps cost 0.1 g'."""
    return f"power caps cost {-grams:.1f} g" if cap_cost(grams) else f"{grams:.1f} g by power caps"


def cap_explanation(grams: float, jobs: Iterable[JobRecord]) -> str:
    """Why caps cost energy, naming the jobs; empty when they did not."""
    if not cap_cost(grams):
        return ""
    names = costly_jobs(jobs)
    return f"power caps cost energy in {', '.join(names) or 'some jobs'}: {ADVICE}"
