"""HiGHS behind one call: the fleet planner's exact path (`fleet_milp.py`) and its capacity prices
(`fleet_prices.py`) both state a problem as "minimise cost . x, within column bounds and row bounds over a sparse
matrix", the one as a MILP, the other as an LP whose row duals they read.

The binding is `highspy` (the `fleet` extra, in the operator's image too), the HiGHS project's own: a few MB beside
numpy, where scipy, which bundles the same solver, added about 140 MB to the image. The solver runs silent: the
Python class of recent highspy releases (1.16) prints a banner on stdout when it is made, and `llmasos plan --batch`
writes its JSON lines there by default, so the binding's core class is used with `output_flag` off before anything
else (a test holds stdout empty).
Without highspy, `available()` is False and both callers fall back (greedy path alone, no prices).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """min cost . x with `col_lower` <= x <= `col_upper` and `row_lower` <= A x <= `row_upper`, A given by its
    non-zero `entries` (row, column, value); every column an integer when `integer`."""

    cost: Sequence[float]
    col_lower: Sequence[float]
    col_upper: Sequence[float]
    entries: Sequence[tuple[int, int, float]]
    row_lower: Sequence[float]
    row_upper: Sequence[float]
    integer: bool = False


@dataclass(frozen=True)
class Result:
    """The solution's values, the rows' duals (LP only: d objective / d row bound, so <= 0 on a binding `<=`
    row of a minimisation) and, for a MILP, the relative gap to the proven bound (0 when optimal)."""

    x: list[float]
    row_duals: list[float]
    gap: float


def available() -> bool:
    """Whether highspy (and so HiGHS) is installed."""
    return importlib.util.find_spec("highspy") is not None


def solve(problem: Problem, time_limit: float | None = None, mip_rel_gap: float | None = None) -> Result | None:
    """HiGHS's answer: for an LP, only an optimal one; for a MILP, the best solution found within `time_limit`
    (seconds). None without highspy or without such a solution."""
    if not available():
        return None
    from highspy import _core

    highs = _core._Highs()
    highs.setOptionValue("output_flag", False)
    if time_limit is not None:
        highs.setOptionValue("time_limit", float(time_limit))
    if mip_rel_gap is not None:
        highs.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    rows = len(problem.row_lower)
    ordered = sorted(problem.entries)
    starts = [0] * rows
    count = [0] * rows
    for r, _, _ in ordered:
        count[r] += 1
    for r in range(1, rows):
        starts[r] = starts[r - 1] + count[r - 1]
    integrality = [1 if problem.integer else 0] * len(problem.cost)
    highs.passModel(
        len(problem.cost), rows, len(ordered), int(_core.MatrixFormat.kRowwise), int(_core.ObjSense.kMinimize),
        0.0, list(problem.cost), list(problem.col_lower), list(problem.col_upper), list(problem.row_lower),
        list(problem.row_upper), starts, [c for _, c, _ in ordered], [v for _, _, v in ordered], integrality,
    )
    highs.run()
    info = highs.getInfo()
    if problem.integer:
        # A MILP stopped by its time limit may still have a feasible solution; the gap then says how good it is.
        if info.primal_solution_status != int(_core.SolutionStatus.kSolutionStatusFeasible):
            return None
        gap = float(info.mip_gap) if info.mip_gap < float("inf") else 1.0
        return Result(list(highs.getSolution().col_value), [], max(gap, 0.0))
    if highs.getModelStatus() != _core.HighsModelStatus.kOptimal:
        return None
    solution = highs.getSolution()
    return Result(list(solution.col_value), list(solution.row_dual), 0.0)
