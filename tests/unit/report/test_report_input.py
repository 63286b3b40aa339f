"""`llmasos report` on ordinary input: kubectl's YAML export, stdin, no kubeconfig; CSV cells a spreadsheet can sum."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from llmasos.cli import main
from tests.unit.report.sample import sample_jobs


def test_report_reads_kubectl_get_o_yaml(tmp_path: Path) -> None:
    export = tmp_path / "llmjobs.yaml"
    export.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", **sample_jobs()}))
    assert main(["report", "-f", str(export), "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["totals"]["gCO2e"] == 4080


def test_report_reads_multi_document_yaml_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = yaml.safe_dump_all(sample_jobs()["items"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["report", "--from-file", "-", "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["totals"]["gCO2e"] == 4080


def test_report_without_kubeconfig_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["report", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: no cluster to read (no kubeconfig: KUBECONFIG is not set, ~/.kube/config does not exist, and this "
        "is not a pod); pass --kubeconfig FILE or set KUBECONFIG, or report on an export: kubectl get llmjobs -A "
        "-o yaml > llmjobs.yaml; llmasos report -f llmjobs.yaml\n"
    )
    assert not (tmp_path / "out").exists()


def test_report_unreachable_cluster_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    assert main(["report", "--kubeconfig", str(kubeconfig), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read LLMJobs from the cluster: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_report_missing_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "-f", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"error: cannot read {tmp_path / 'nope.yaml'}: No such file or directory\n"


def test_csv_cells_hold_one_value_and_lowercase_booleans(tmp_path: Path) -> None:
    src = tmp_path / "llmjobs.json"
    src.write_text(json.dumps(sample_jobs()))
    assert main(["report", "-f", str(src), "--out", str(tmp_path / "out")]) == 0
    totals = list(csv.DictReader((tmp_path / "out" / "totals.csv").read_text().splitlines()))
    assert [c for c in totals[0] if c.startswith("offsetCost")] == ["offsetCostEUR", "offsetCostUSD"]
    for row in totals:
        for value in row.values():
            assert ";" not in value
            assert value not in ("True", "False", "None")
    jobs = list(csv.DictReader((tmp_path / "out" / "llmjobs.csv").read_text().splitlines()))
    assert {j["isEstimated"] for j in jobs} <= {"true", "false"}
    assert all(v != "None" for j in jobs for v in j.values())
