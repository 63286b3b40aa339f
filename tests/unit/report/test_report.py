"""`llmasos report` on a hand-checkable set of jobs: totals, per-lever savings, teams, tokens, offsets, outputs."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmasos.cli import main
from llmasos.report.aggregate import build_report
from llmasos.report.cli import register
from llmasos.report.html import render_html
from llmasos.report.model import items_of, parse_llmjob
from tests.unit.report.sample import carbon, external_references, llmjob, sample_jobs

NOW = datetime(2024, 3, 7, tzinfo=UTC)


def report_of(doc: Mapping[str, Any]) -> Any:
    return build_report([parse_llmjob(o) for o in items_of(doc)], NOW)


def test_totals_and_levers_kept_apart() -> None:
    r = report_of(sample_jobs())
    t = r.totals
    assert t.jobs == 3
    assert [j.name for j in r.without_accounting] == ["pending-d"]
    assert t.energy_kwh == pytest.approx(17)
    assert t.facility_kwh == pytest.approx(20.4)
    assert t.grams == pytest.approx(4080)
    assert t.average_intensity == pytest.approx(200)  # 4080 g / 20.4 kWh
    # time shifting: 1000 + 0 - 80 (eval-c was worse than run-now: kept negative) = 920 g, 920 / 5000 = 18.4 %
    assert t.time_shift_g == pytest.approx(920)
    assert t.time_shift_percent == pytest.approx(18.4)
    assert t.pool_choice_g == pytest.approx(200)
    # power caps: 1 kWh x PUE 1.2 x 250 g/kWh = 300 g
    assert t.power_cap_g == pytest.approx(300)
    # tokens: train-a 1e6 and eval-c 5e5 over their 12 kWh -> 12 x 3.6e6 / 1.5e6 = 28.8 J/token
    assert t.joules_per_token == pytest.approx(28.8)
    assert t.offset_tonnes == pytest.approx(0.00408)
    assert t.cost_by_currency == pytest.approx({"EUR": 0.288, "USD": 0.05})


def test_groups_by_namespace_team_and_model() -> None:
    r = report_of(sample_jobs())
    assert {k: v.energy_kwh for k, v in r.groups["namespace"].items()} == {"ml": 15, "research": 2}
    # spec.accounting.team wins over the label; no team at all is "unassigned"
    assert {k: v.energy_kwh for k, v in r.groups["team"].items()} == {"nlp": 10, "vision": 5, "unassigned": 2}
    assert list(r.groups["model"]) == ["gpt-small", "meta/llama", "/models/x"]  # by emissions, largest first
    assert r.groups["namespace"]["research"].time_shift_g == pytest.approx(-80)
    assert r.sources == {"electricitymaps": 1, "trace": 2}
    assert r.pue_range == pytest.approx((1.2, 1.2))


def test_cli_writes_html_csv_json(tmp_path: Path) -> None:
    src = tmp_path / "llmjobs.json"
    src.write_text(json.dumps(sample_jobs()))
    assert main(["report", "--from-file", str(src), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    data = json.loads((out / "report.json").read_text())
    assert data["totals"]["gCO2e"] == 4080
    assert data["totals"]["savings"] == {"timeShiftGCO2e": 920, "timeShiftPercent": 18.4, "poolChoiceGCO2e": 200,
                                         "powerCapGCO2e": 300, "powerCapKWh": 1.0}
    assert data["byTeam"]["vision"]["energyKWh"] == 5
    assert data["jobsWithoutAccounting"] == ["research/pending-d"]
    jobs = list(csv.DictReader((out / "llmjobs.csv").read_text().splitlines()))
    assert [j["name"] for j in jobs] == ["train-a", "train-b", "eval-c"]
    assert jobs[0]["powerCapSavedGCO2e"] == "300.0"
    totals = {(r["dimension"], r["key"]): r for r in csv.DictReader((out / "totals.csv").read_text().splitlines())}
    assert float(totals[("all", "all")]["gCO2e"]) == 4080
    assert (totals[("all", "all")]["offsetCostEUR"], totals[("all", "all")]["offsetCostUSD"]) == ("0.29", "0.05")
    assert "offsetCost" not in totals[("all", "all")]
    assert float(totals[("namespace", "ml")]["energyKWh"]) == 15
    assert "<svg" in (out / "report.html").read_text()


def test_cli_reads_the_cluster_through_the_injected_fetch(tmp_path: Path) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def fetch(kubeconfig: str | None, namespace: str | None) -> list[Mapping[str, Any]]:
        seen.append((kubeconfig, namespace))
        return [i for i in items_of(sample_jobs()) if i["metadata"]["namespace"] == namespace]

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"), fetch=fetch)
    args = parser.parse_args(["report", "--kubeconfig", "/k", "-n", "research", "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert seen == [("/k", "research")]
    assert json.loads((tmp_path / "report.json").read_text())["totals"]["energyKWh"] == 2


def test_unreadable_input_is_an_error_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", "--from-file", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "neither JSON nor YAML" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # The wrong export (pods, or an object that is not a List) must not read as a report of no jobs.
        ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: p}}\n",
         "no LLMJob among its 1 object(s) (kind Pod)"),
        ("{}", "expected a List with `items`"),
        ('{"items": 3}', "`items` is not a list"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
         "(kind Pod, Service)"),
    ],
)
def test_an_export_without_llmjobs_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    export = tmp_path / "export.yaml"
    export.write_text(text)
    assert main(["report", "--from-file", str(export), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"error: {export}: " in err
    assert message in err
    assert not (tmp_path / "o").exists()


def test_an_empty_list_is_a_report_of_no_jobs_and_other_kinds_beside_llmjobs_are_skipped(tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    for empty in ([], None):
        export.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": empty}))
        assert main(["report", "--from-file", str(export), "--out", str(tmp_path / "empty")]) == 0
        assert json.loads((tmp_path / "empty" / "report.json").read_text())["totals"]["jobs"] == 0
    export.write_text(json.dumps(sample_jobs()))
    assert main(["report", "--from-file", str(export), "--out", str(tmp_path / "alone")]) == 0
    mixed = {"items": [*items_of(sample_jobs()), {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}]}
    export.write_text(json.dumps(mixed))
    assert main(["report", "--from-file", str(export), "--out", str(tmp_path / "mixed")]) == 0
    alone = (tmp_path / "alone" / "llmjobs.csv").read_text()
    assert (tmp_path / "mixed" / "llmjobs.csv").read_text() == alone
    assert len(alone.splitlines()) > 1  # a header and the jobs


def test_a_hand_written_yaml_export_keeps_unquoted_times_as_written(tmp_path: Path) -> None:
    """kubectl quotes times in `-o yaml`; a hand-edited export may not, and must not read "2024-03-06 02:00:00"."""
    export = tmp_path / "export.yaml"
    export.write_text(yaml.safe_dump(sample_jobs()).replace("'2024-03-06T02:00:00Z'", "2024-03-06T02:00:00Z"))
    assert "startTime: 2024-03-06T02:00:00Z" in export.read_text()
    assert main(["report", "--from-file", str(export), "--out", str(tmp_path / "o")]) == 0
    rows = (tmp_path / "o" / "llmjobs.csv").read_text()
    assert ",2024-03-06T02:00:00Z," in rows
    assert "2024-03-06 02:00:00" not in rows


def test_html_escapes_cluster_values_and_fetches_nothing() -> None:
    doc = {"items": [llmjob("ml", "x", team="<img src=x onerror=alert(1)>",
                            carbon=carbon(1, 1.2, 100, 120, 83.3, cost=0.01))]}
    page = render_html(report_of(doc))
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page
    assert "default-src 'none'" in page  # the browser itself refuses any fetch
    assert external_references(page) == []
    assert "Location-based, not market-based" in page
    assert "Apache-2.0" in page
    assert "MIT" in page


def capped_jobs(cap_kwh: float) -> dict[str, Any]:
    return {"items": [llmjob("ml", "capped", carbon=carbon(1, 1.2, 300, 300, 300, cap_kwh=cap_kwh)),
                      llmjob("ml", "plain", carbon=carbon(1, 1.2, 300, 300, 300))]}


def test_a_cap_that_cost_energy_is_named_a_cost_not_a_negative_saving(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """make demo printed 'saved ... -0.1 g by power caps' (issue 17): a 250 W cap on an A100 80GB really cost
    energy on the measured curves; the report says so in words and names the job."""
    src = tmp_path / "jobs.json"
    src.write_text(json.dumps(capped_jobs(-0.00021)))
    assert main(["report", "--from-file", str(src), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "power caps cost 0.1 g" in out
    assert "-0.1" not in out
    assert "power caps cost energy in ml/capped:" in out
    assert "ml/plain" not in out
    page = (tmp_path / "o" / "report.html").read_text()
    assert "Power caps cost" in page
    assert "Saved by power caps" not in page
    assert "Power caps cost energy in ml/capped" in page


@pytest.mark.parametrize("cap_kwh", [0.0, 0.001, -0.0001])
def test_a_saving_or_an_invisible_cost_reads_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       cap_kwh: float) -> None:
    src = tmp_path / "jobs.json"
    src.write_text(json.dumps(capped_jobs(cap_kwh)))
    assert main(["report", "--from-file", str(src), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "g by power caps" in out
    assert "cost" not in out
    assert "Saved by power caps" in (tmp_path / "o" / "report.html").read_text()
