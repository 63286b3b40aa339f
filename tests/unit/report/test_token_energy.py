"""Energy per token by model and by namespace (issue #24): from status.carbon.tokens and each job's energy."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmasos.report.aggregate import build_report, energy_per_token
from llmasos.report.model import JobRecord, items_of, parse_llmjob
from llmasos.report.writers import write_report
from tests.unit.report.sample import carbon, llmjob, sample_jobs

NOW = datetime(2024, 3, 7, tzinfo=UTC)


def jobs() -> list[JobRecord]:
    doc = sample_jobs()
    # a second gpt-small job in another namespace: 3 kWh for 2e6 tokens = 5.4 J/token
    doc["items"].append(llmjob("vision", "train-e", carbon=carbon(3, 3.6, 300, 300, 100), tokens=2e6))
    return [parse_llmjob(o) for o in items_of(doc)]


def test_per_model_energy_over_tokens_of_the_jobs_that_counted_them() -> None:
    rows = {r.key: r for r in energy_per_token([j for j in jobs() if j.has_carbon], "model")}
    small = rows["gpt-small"]  # train-a (10 kWh, 1e6 tokens: 36 J/token) and train-e (5.4 J/token)
    assert (small.jobs, small.token_jobs, small.tokens, small.energy_kwh) == (2, 2, 3e6, 13)
    assert small.joules_per_token == pytest.approx(13 * 3.6e6 / 3e6)  # 15.6 J/token, token-weighted
    assert (small.lowest, small.highest) == pytest.approx((5.4, 36.0))
    llama = rows["meta/llama"]  # counted no tokens: no figure, and its 5 kWh are not spread over others' tokens
    assert (llama.token_jobs, llama.tokens, llama.joules_per_token) == (0, 0, None)
    assert rows["/models/x"].joules_per_token == pytest.approx(2 * 3.6e6 / 5e5)  # tokens from status.progress
    assert energy_per_token(jobs(), "model")[0].key == "gpt-small"  # most tokens first


def test_per_namespace_and_in_the_outputs() -> None:
    report = build_report(jobs(), NOW)
    by_ns = {r["key"]: r for r in report.to_dict()["energyPerToken"]["byNamespace"]}
    assert by_ns["ml"]["jobsWithTokens"] == 1
    assert by_ns["ml"]["jobs"] == 2
    assert by_ns["ml"]["joulesPerToken"] == pytest.approx(36.0)
    assert by_ns["vision"]["joulesPerToken"] == pytest.approx(5.4)
    assert by_ns["research"]["jobs"] == 1  # the pending job has no accounting: not in the report's jobs
    by_model = report.to_dict()["energyPerToken"]["byModel"]
    assert [r["key"] for r in by_model] == ["gpt-small", "/models/x", "meta/llama"]  # most tokens first
    assert by_model[-1]["joulesPerToken"] is None


def test_html_and_csv_give_energy_per_token_per_model_and_namespace(tmp_path: Path) -> None:
    files = write_report(build_report(jobs(), NOW), tmp_path)
    rows = {(r["dimension"], r["key"]): r for r in csv.DictReader(files["tokens_csv"].read_text().splitlines())}
    small = rows[("model", "gpt-small")]
    assert (small["jobs"], small["jobsWithTokens"], float(small["tokens"])) == ("2", "2", 3e6)
    assert float(small["joulesPerToken"]) == pytest.approx(15.6)
    assert (float(small["lowestJoulesPerToken"]), float(small["highestJoulesPerToken"])) == (5.4, 36.0)
    assert rows[("model", "meta/llama")]["joulesPerToken"] == ""  # no tokens: an empty cell, not 0
    assert float(rows[("namespace", "ml")]["joulesPerToken"]) == pytest.approx(36.0)
    assert float(rows[("namespace", "vision")]["joulesPerToken"]) == pytest.approx(5.4)
    assert {d for d, _ in rows} == {"model", "namespace"}

    html = files["html"].read_text()
    section = html[html.index("<h2>Energy per token</h2>"):html.index("<h2>Jobs</h2>")]
    by_model, by_namespace = section.split("</table>")[:2]
    assert "<tr><td>gpt-small</td><td>2</td><td>2</td><td>3,000,000</td><td>13.000</td><td>15.6000</td>" \
           "<td>5.4000</td><td>36.0000</td></tr>" in by_model
    assert "<tr><td>meta/llama</td><td>1</td><td>0</td><td>&ndash;</td>" in by_model
    assert "<th>namespace</th>" in by_namespace
    assert "<tr><td>vision</td><td>1</td><td>1</td><td>2,000,000</td><td>3.000</td><td>5.4000</td>" in by_namespace
