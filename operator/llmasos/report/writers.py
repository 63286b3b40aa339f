"""Write the report's three forms: report.html (people), report.json (tools), llmjobs.csv, totals.csv and
energy-per-token.csv (spreadsheets). One function, one directory, atomic per file so a reader never sees half a report.

The CSV files hold one value per cell, so a spreadsheet can sum any column: offset costs get one column per currency
(`offsetCostEUR`, `offsetCostUSD`, ...), booleans are `true`/`false`, and a missing value is an empty cell."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from llmasos.report.aggregate import CSV_COLUMNS, TOKEN_DIMENSIONS, Report, energy_per_token, job_row
from llmasos.report.html import render_html

TOTALS_COLUMNS = (
    "dimension", "key", "jobs", "energyKWh", "facilityEnergyKWh", "gCO2e", "averageIntensity", "runNowGCO2e",
    "timeShiftSavedGCO2e", "timeShiftSavedPercent", "poolChoiceSavedGCO2e", "powerCapSavedGCO2e", "powerCapSavedKWh",
    "tokens", "joulesPerToken", "offsetTonnes",
)
COST_COLUMN = "offsetCost{}"  # one column per currency
TOKEN_COLUMNS = ("dimension", "key", "jobs", "jobsWithTokens", "tokens", "energyKWh", "joulesPerToken",
                 "lowestJoulesPerToken", "highestJoulesPerToken")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def _csv(rows: list[dict[str, object]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def totals_columns(report: Report) -> tuple[str, ...]:
    """TOTALS_COLUMNS, then one offset-cost column per currency the report holds (sorted)."""
    currencies = sorted({c for t in _all_totals(report) for c in t.to_dict()["offset"]["cost"]})
    return TOTALS_COLUMNS + tuple(COST_COLUMN.format(c) for c in currencies)


def _all_totals(report: Report) -> list[Any]:
    return [report.totals, *(t for items in report.groups.values() for t in items.values())]


def totals_rows(report: Report) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    groups = {"all": {"all": report.totals}, **report.groups}
    for dimension, items in groups.items():
        for key, totals in items.items():
            d = totals.to_dict()
            s = d["savings"]
            rows.append(dict(zip(TOTALS_COLUMNS, (
                dimension, key, d["jobs"], d["energyKWh"], d["facilityEnergyKWh"], d["gCO2e"], d["averageIntensity"],
                d["runNowGCO2e"], s["timeShiftGCO2e"], s["timeShiftPercent"], s["poolChoiceGCO2e"], s["powerCapGCO2e"],
                s["powerCapKWh"], d["tokens"], d["joulesPerToken"], d["offset"]["tonnes"],
            ), strict=True)) | {COST_COLUMN.format(k): v for k, v in d["offset"]["cost"].items()})
    return rows


def token_rows(report: Report) -> list[dict[str, object]]:
    """energy-per-token.csv: one row per model and per namespace (`energy_per_token`)."""
    return [{"dimension": dim, **row.to_dict()} for dim in TOKEN_DIMENSIONS
            for row in energy_per_token(report.jobs, dim)]


def write_report(report: Report, out: Path, title: str = "LLMasOS sustainability report") -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "html": out / "report.html",
        "json": out / "report.json",
        "jobs_csv": out / "llmjobs.csv",
        "totals_csv": out / "totals.csv",
        "tokens_csv": out / "energy-per-token.csv",
    }
    _atomic_write(files["html"], render_html(report, title))
    _atomic_write(files["json"], json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n")
    _atomic_write(files["jobs_csv"], _csv([job_row(j) for j in report.jobs], CSV_COLUMNS))
    _atomic_write(files["totals_csv"], _csv(totals_rows(report), totals_columns(report)))
    _atomic_write(files["tokens_csv"], _csv(token_rows(report), TOKEN_COLUMNS))
    return files
