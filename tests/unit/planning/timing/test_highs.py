"""The HiGHS adapter: LP duals with the sign the prices read, MILP solutions and gaps, None where there is no answer,
and nothing printed on stdout (`llmasos plan --batch` writes its JSON lines there)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from llmasos.planning.timing import highs
from llmasos.planning.timing.highs import Problem

ROOT = Path(__file__).resolve().parents[4]
pytestmark = pytest.mark.skipif(not highs.available(), reason="highspy (the fleet extra) is not installed")


def two_hours(free: float) -> Problem:
    """3 GPU-hours into two hours costing 100 and 300, at most `free` GPUs an hour (rows 0, 1), all of them (row 2)."""
    entries = [(0, 0, 1.0), (1, 1, 1.0), (2, 0, 1.0), (2, 1, 1.0)]
    return Problem([100.0, 300.0], [0.0, 0.0], [math.inf, math.inf], entries, [-math.inf, -math.inf, 3.0],
                   [free, free, 3.0])


def test_an_lp_gives_its_solution_and_row_duals() -> None:
    result = highs.solve(two_hours(2.0))
    assert result is not None
    assert result.x == pytest.approx([2.0, 1.0])
    # One more GPU in the cheap hour saves 200 (300 -> 100): d objective / d bound = -200 on the binding row.
    assert result.row_duals == pytest.approx([-200.0, 0.0, 300.0])


def test_an_infeasible_lp_has_no_result() -> None:
    assert highs.solve(two_hours(1.0)) is None


def test_a_milp_picks_whole_values() -> None:
    # Choose one of three items (row 0) with at most 2 units of weight (row 1), least cost first.
    problem = Problem([5.0, 3.0, 4.0], [0.0] * 3, [1.0] * 3, [(0, 0, 1.0), (0, 1, 1.0), (0, 2, 1.0), (1, 0, 1.0),
                      (1, 1, 3.0), (1, 2, 2.0)], [1.0, -math.inf], [1.0, 2.0], integer=True)
    result = highs.solve(problem, time_limit=5.0, mip_rel_gap=1e-6)
    assert result is not None
    assert result.x == pytest.approx([0.0, 0.0, 1.0])
    assert result.gap == pytest.approx(0.0)


def test_entries_in_any_order_make_the_same_matrix() -> None:
    problem = two_hours(2.0)
    shuffled = Problem(problem.cost, problem.col_lower, problem.col_upper, list(reversed(problem.entries)),
                       problem.row_lower, problem.row_upper)
    a, b = highs.solve(problem), highs.solve(shuffled)
    assert a is not None
    assert b is not None
    assert a.x == pytest.approx(b.x)


def test_solving_prints_nothing_on_stdout() -> None:
    code = (
        "import math; from llmasos.planning.timing import highs; "
        "p = highs.Problem([1.0], [0.0], [1.0], [(0, 0, 1.0)], [1.0], [1.0], integer=True); "
        "assert highs.solve(p, time_limit=5.0) is not None; "
        "assert highs.solve(highs.Problem([1.0], [0.0], [1.0], [], [], [])) is not None"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT / "operator")})
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
