"""`llmasos plan -f`'s table says the deadline, the run time and how it was derived, and the expected energy and
emissions of the plan and of running now; `-o json`/`-o yaml` carry the same figures (#20 item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmasos.cli import main

REPO = Path(__file__).resolve().parents[3]
NOW = ["--now", "2026-11-25T13:10:00Z", "--source", "trace"]
DEADLINE_JOB = """
apiVersion: llmasos.io/v1alpha1
kind: LLMJob
metadata: {name: night-run, creationTimestamp: "2026-11-25T13:00:00Z"}
spec:
  model: {builtin: gpt-small}
  parallelism: {nodes: 1, gpusPerNode: 4}
  placement: {nodePools: [l4]}
  carbon: {policy: deadline, deadline: "2026-11-26T13:00:00Z", expectedDuration: 3h, zone: DE}
"""
IMMEDIATE_JOB = """
apiVersion: llmasos.io/v1alpha1
kind: LLMJob
metadata: {name: quick}
spec:
  model: {builtin: gpt-small}
  parallelism: {nodes: 2, gpusPerNode: 4}
  carbon: {policy: immediate, zone: SE}
"""
REFERENCE = "(nvidia-a100-80gb, the reference GPU; --pools plans on your pools' GPUs)"


def plan(tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "job.yaml"
    path.write_text(manifest)
    code = main(["plan", "-f", str(path), *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def rows(out: str) -> dict[str, str]:
    return {line[:13].strip(): line[14:] for line in out.splitlines()}


def test_deadline_duration_energy_and_emissions_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan(tmp_path, capsys, DEADLINE_JOB, *NOW)
    assert (code, err) == (0, "")
    got = rows(out)
    assert list(got) == ["LLMJob", "Policy", "Pool", "Zone", "Deadline", "Duration", "Start at", "Segments",
                         "Latest start", "Intensity", "Energy", "Emissions", "Savings", "Forecast", "Reason"]
    assert got["Deadline"] == "2026-11-26T13:00:00Z (spec.carbon.deadline)"
    assert got["Duration"] == "3h00m, expectedDuration as written"
    assert got["Intensity"] == "437.2 gCO2e/kWh expected, 549.9 if run now"
    # 4 GPUs x 400 W x 3 h x PUE 1.2 = 5.76 kWh; x 437.2 and x 549.9 gCO2e/kWh
    assert got["Energy"] == f"5.8 kWh: 4 GPUs x 400 W x 3h00m x PUE 1.2 {REFERENCE}"
    assert got["Emissions"] == "2.5 kg CO2e expected, 3.2 kg CO2e if run now (saves 649 g)"
    assert got["Savings"] == "20.5%"


def test_json_and_yaml_carry_the_same_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = plan(tmp_path, capsys, DEADLINE_JOB, *NOW, "-o", "json")
    data = json.loads(out)
    assert {k: data[k] for k in ("deadline", "deadlineNote", "runTimeSeconds", "durationNote", "gpus", "gpuProduct",
                                 "gpuWatts", "pue", "expectedEnergyKWh")} == {
        "deadline": "2026-11-26T13:00:00Z", "deadlineNote": "spec.carbon.deadline", "runTimeSeconds": 10800,
        "durationNote": "3h00m, expectedDuration as written", "gpus": 4, "gpuProduct": "nvidia-a100-80gb",
        "gpuWatts": 400.0, "pue": 1.2, "expectedEnergyKWh": 5.76}
    assert data["expectedGCO2e"] == pytest.approx(5.76 * data["expectedIntensity"], abs=1)
    assert data["runNowGCO2e"] == pytest.approx(5.76 * data["runNowIntensity"], abs=1)
    assert data["savedGCO2e"] == pytest.approx(data["runNowGCO2e"] - data["expectedGCO2e"], abs=0.1)
    _, out, _ = plan(tmp_path, capsys, DEADLINE_JOB, *NOW, "-o", "yaml")
    assert yaml.safe_load(out) == data


def test_a_duration_rescaled_to_the_pool_gpu_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(tmp_path, capsys, DEADLINE_JOB, *NOW, "--pools", str(REPO / "e2e" / "node-pools.yaml"))
    got = rows(out)
    assert code == 0
    assert got["Pool"] == "l4"
    assert got["Duration"] == (
        "expectedDuration 3h00m is read as run time on the reference GPU (nvidia-a100-80gb) and rescaled to 10h00m "
        "on nvidia-l4 by their relative throughput (docs/carbon.md)")
    assert got["Energy"].endswith(" x 10h00m x PUE 1.2 (nvidia-l4)")


def test_a_defaulted_duration_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = plan(tmp_path, capsys, IMMEDIATE_JOB, *NOW)
    got = rows(out)
    assert got["Deadline"] == "none: policy immediate sets no deadline"
    assert got["Duration"] == ("1h00m, assumed: no expectedDuration is set, so the operator's default of 1h00m is used "
                               "(set spec.carbon.expectedDuration)")
    assert got["Energy"] == f"3.8 kWh: 8 GPUs x 400 W x 1h00m x PUE 1.2 {REFERENCE}"
    _, out, _ = plan(tmp_path, capsys, IMMEDIATE_JOB.replace("carbon:", "maxRuntime: 6h\n  carbon:"), *NOW)
    assert rows(out)["Duration"] == (
        "6h00m, assumed: no expectedDuration is set, so spec.maxRuntime (6h00m) is used, as the operator does")


def test_spec_pue_is_used_as_the_operator_uses_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = plan(tmp_path, capsys, IMMEDIATE_JOB.replace("carbon:", "accounting: {pue: 1.5}\n  carbon:"), *NOW)
    assert rows(out)["Energy"] == f"4.8 kWh: 8 GPUs x 400 W x 1h00m x PUE 1.5 {REFERENCE}"


def test_a_passed_deadline_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = DEADLINE_JOB.replace('deadline: "2026-11-26T13:00:00Z"', "maxDelay: 12h").replace(
        "2026-11-25T13:00:00Z", "2026-11-20T13:00:00Z")
    code, out, err = plan(tmp_path, capsys, old, *NOW)
    assert (code, out) == (2, "")
    assert err == (
        "error: LLMJob night-run: its deadline 2026-11-21T01:00:00Z (maxDelay 12h00m after the LLMJob's creation) has "
        "already passed at 2026-11-25T13:10:00Z, so no start time can meet it; set a later deadline, or pass --now to "
        "plan as of an earlier time (spec.carbon.maxDelay)\n")
    code, _, err = plan(tmp_path, capsys, DEADLINE_JOB, "--now", "2026-11-26T13:00:00Z", "--source", "trace")
    assert code == 2
    assert err.startswith("error: LLMJob night-run: its deadline 2026-11-26T13:00:00Z (spec.carbon.deadline) has "
                          "already passed at 2026-11-26T13:00:00Z")


def test_a_deadline_too_close_shows_one_latest_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(tmp_path, capsys, DEADLINE_JOB, "--now", "2026-11-26T11:00:00Z", "--source", "trace")
    got = rows(out)
    assert code == 0
    assert got["Latest start"] == ("2026-11-26T09:45:00Z, already passed: started at once, the job ends after its "
                                   "deadline 2026-11-26T13:00:00Z")
    assert got["Reason"] == "cannot finish by the deadline even when started now (latest start 2026-11-26T09:45:00Z)"
    assert got["Emissions"] == "not estimated: the job cannot finish before its deadline"


def test_wide_prices_every_pool_in_the_same_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = DEADLINE_JOB.replace("nodePools: [l4]", "nodePools: [a100, h100, l4]")
    code, out, _ = plan(tmp_path, capsys, job, "--now", "2026-11-26T06:10:00Z", "--source", "trace",
                        "--pools", str(REPO / "e2e" / "node-pools.yaml"), "-o", "wide")
    got = rows(out)
    assert code == 0
    assert got["Pool a100"] == "nvidia-a100-80gb in DE, 16 GPUs free, runs 3h00m, 5.8 kWh, 2.5 kg CO2e expected"
    assert got["Pool l4"] == ("nvidia-l4 in DE, 12 GPUs free, runs 10h00m, 3.5 kWh; ruled out: cannot finish before "
                              "the deadline")
    assert got["Emissions"].startswith(f"{got['Pool ' + got['Pool']].split(', ')[-1].removesuffix(' expected')} ")


def test_pool_zones_are_checked_and_normalised_like_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = DEADLINE_JOB.replace(", zone: DE", "").replace("nodePools: [l4]", "nodePools: [a100]")
    outputs = []
    for zone in ("de", "DE"):
        pools = tmp_path / "pools.yaml"
        pools.write_text(yaml.safe_dump({"pools": [
            {"name": "a100", "gpuProduct": "nvidia-a100-80gb", "count": 2, "gpusPerNode": 8, "carbonZone": zone}]}))
        code, out, _ = plan(tmp_path, capsys, job, *NOW, "--pools", str(pools), "-o", "json")
        assert code == 0
        outputs.append(out)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["zone"] == "DE"
    pools.write_text(pools.read_text().replace("DE", "XX-NOWHERE"))
    code, out, err = plan(tmp_path, capsys, job, *NOW, "--pools", str(pools))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {pools}: pools[0] (a100): unknown carbon zone 'XX-NOWHERE': no trace and no annual "
                          "average for it")
