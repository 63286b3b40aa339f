"""`llmasos simulate` on ordinary input: percent vs fraction, impossible deadlines, strict booleans, output
directories, and the user's own dates in every output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmasos.cli import main

HEADER = "id,submitted_at,duration,deadline,interruptible\n"
GOOD = "a,2026-12-01T08:00:00Z,6h,2026-12-02T08:00:00Z,false\nb,2026-12-01T20:00:00Z,3h,2026-12-03T08:00:00Z,yes\n"


def run(tmp_path: Path, rows: str, *extra: str) -> int:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(HEADER + rows)
    return main(["simulate", "--zone", "DE", "--jobs", str(jobs), "--out", str(tmp_path / "out"), *extra])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10", "argument --forecast-error: 10 would mean 1000%: give a fraction (0.1 is 10%) or a percentage with its "
               "sign (10%)"),
        ("ten", "argument --forecast-error: 'ten' is not a number (use a fraction like 0.1, or 10%)"),
        ("150%", "argument --forecast-error: 150% must be between 0 and 1 (0% and 100%)"),
    ],
)
def test_forecast_error_above_one_is_refused_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, GOOD, "--forecast-error", value)
    assert exc.value.code == 2
    assert capsys.readouterr().err.endswith(f"llmasos simulate: error: {message}\n")


def test_forecast_error_as_a_percentage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, GOOD, "--forecast-error", "10%") == 0
    assert "error 10% at 24 h" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,2026-12-01T08:00:00Z,6h,2026-12-01T07:00:00Z,false\n",
         "jobs line 4: deadline 2026-12-01T07:00:00Z is not after submitted_at 2026-12-01T08:00:00Z"),
        ("a,2026-12-01T08:00:00Z,6h,2026-12-01T12:00:00Z,false\n",
         "jobs line 4: cannot finish by its deadline 2026-12-01T12:00:00Z even if it starts at submission "
         "(2026-12-01T08:00:00Z + 6h)"),
        ("a,2026-12-01T08:00:00Z,6h,2026-12-02T08:00:00Z,maybe\n",
         "jobs line 4: interruptible must be true or false (or yes/no, 1/0), got 'maybe'"),
    ],
)
def test_bad_rows_are_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, message: str
) -> None:
    assert run(tmp_path, GOOD + row.replace("a,", "c,", 1)) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_unknown_zone_lists_the_shipped_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(HEADER + GOOD)
    assert main(["simulate", "--zone", "FR", "--jobs", str(jobs), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        "error: no trace for zone 'FR': choose one of DE, SE, US-CAL-CISO, US-MIDA-PJM, US-NE-ISNE, US-TEX-ERCO\n")


def test_missing_output_directories_are_created(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(HEADER + GOOD)
    out = tmp_path / "a" / "b"
    assert main(["simulate", "--zone", "DE", "--jobs", str(jobs), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["simulate.html", "simulate.svg"]


def test_unwritable_output_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("a file, not a directory")
    assert run(tmp_path, GOOD) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {tmp_path / 'out' / 'simulate.svg'}: ")
    assert err.count("\n") == 1


def test_dates_are_the_users_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, GOOD) == 0
    out = capsys.readouterr().out
    assert ("grid intensity: the DE trace of 2020-12-08 .. 2020-12-10 (historical data), shown on your dates "
            "(312 weeks later, same weekday and hour)") in out
    html = (tmp_path / "out" / "simulate.html").read_text()
    svg = (tmp_path / "out" / "simulate.svg").read_text()
    years = set(re.findall(r"\b(20[12]\d)-\d\d-\d\d", html.replace("the DE trace of 2020-12-08 .. 2020-12-10", "")))
    assert years == {"2026"}
    assert set(re.findall(r"\b(20[12]\d)-\d\d-\d\d", svg)) == {"2026"}
    # Job a: submitted 08:00 on 1 December, 6 h long; its run-now segment is in the user's time.
    assert "2026-12-01 08:00 UTC .. 2026-12-01 14:00 UTC" in html
