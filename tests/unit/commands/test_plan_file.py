"""`llmasos plan -f` with kubectl's habits: -o formats, --output-file, stdin, multi-document manifests, the examples."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from llmasos.cli import main

REPO = Path(__file__).resolve().parents[3]
POOLS = REPO / "e2e" / "node-pools.yaml"
NOW = ("--now", "2026-11-25T13:10:00Z", "--source", "trace")
JOB = """
apiVersion: llmasos.io/v1alpha1
kind: LLMJob
metadata: {name: NAME, creationTimestamp: "2026-11-25T13:00:00Z"}
spec:
  model: {builtin: gpt-small}
  parallelism: {nodes: 1, gpusPerNode: 4}
  placement: {nodePools: [a100, h100, l4]}
  carbon: {policy: deadline, deadline: "2026-11-26T13:00:00Z", expectedDuration: 3h}
"""
ZONES = "DE, SE, US-CAL-CISO, US-MIDA-PJM, US-NE-ISNE, US-TEX-ERCO"


def manifest(tmp_path: Path, *names: str, extra: str = "") -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(extra + "---".join(JOB.replace("NAME", n) for n in names))
    return path


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_plans_with_the_documented_command(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(example), "--pools", str(POOLS), *NOW, "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    jobs = out["items"] if out.get("kind") == "List" else [out]
    llmjobs = [d for d in yaml.safe_load_all(example.read_text()) if d and d.get("kind") == "LLMJob"]
    assert [j["name"] for j in jobs] == [d["metadata"]["name"] for d in llmjobs]
    assert all(j["pool"] for j in jobs)


def test_no_zone_lists_the_zones_and_points_at_the_pools_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "-f", str(manifest(tmp_path, "night-run")), *NOW]) == 2
    assert capsys.readouterr().err == (
        "error: LLMJob night-run: no carbon zone to plan for. Set spec.carbon.zone, pass --zone ZONE (an Electricity "
        f"Maps zone key; hourly traces ship for {ZONES}, other zones get an annual average), or pass --pools FILE to "
        "choose among node pools (e2e/node-pools.yaml describes the local cluster's)\n"
    )


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        ({"pools": [{"name": "a100", "gpuProduct": "nvidia-a100-80gb", "count": 1, "gpusPerNode": 8}]},
         ": pools[0] (a100) has no carbonZone: every pool needs name, gpuProduct and carbonZone (an Electricity Maps "
         "zone key such as DE), as in e2e/node-pools.yaml"),
        ({"pools": [{"gpuProduct": "nvidia-l4", "carbonZone": "DE"}]},
         ": pools[0] has no name: every pool needs name, gpuProduct and carbonZone "
         "(an Electricity Maps zone key such as DE), as in e2e/node-pools.yaml"),
        ({"nodes": []}, ": expected `pools:` with a list of pools (see e2e/node-pools.yaml)"),
        ({"pools": [{"name": "a", "gpuProduct": "nvidia-l4", "carbonZone": "DE", "count": "two"}]},
         ": pools[0] (a): count and gpusPerNode must be whole numbers"),
        ({"pools": [{"name": "v100", "gpuProduct": "nvidia-l4", "carbonZone": "DE"}]},
         " has none of the pools the LLMJob allows (spec.placement.nodePools: a100, h100, l4); it has v100"),
    ],
)
def test_bad_pools_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pools: object, message: str
) -> None:
    pools_file = tmp_path / "pools.yaml"
    pools_file.write_text(yaml.safe_dump(pools))
    assert main(["plan", "-f", str(manifest(tmp_path, "j")), "--pools", str(pools_file), *NOW]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {pools_file}{message}\n"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_output_formats_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    assert main(["plan", "-f", str(manifest(tmp_path, "night-run")), "--zone", "DE", *NOW, "--output", fmt]) == 0
    text = capsys.readouterr().out
    data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert data["name"] == "night-run"
    assert data["zone"] == "DE"


def test_unquoted_times_are_read_as_kubectl_reads_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """kubectl sends `deadline: 2026-11-26T13:00:00Z` unquoted as the string written (sigs.k8s.io/yaml); so does plan.

    PyYAML's own loader would make it a datetime, refused as "must be of type string, got datetime".
    """
    quoted = manifest(tmp_path, "night-run")
    assert main(["plan", "-f", str(quoted), "--zone", "DE", *NOW, "-o", "json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text(quoted.read_text().replace('"2026-11-26T13:00:00Z"', "2026-11-26T13:00:00Z")
                        .replace('"2026-11-25T13:00:00Z"', "2026-11-25T13:00:00Z"))
    assert '"' not in unquoted.read_text()
    assert main(["plan", "-f", str(unquoted), "--zone", "DE", *NOW, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_wide_shows_every_pool_considered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, "night-run")
    assert main(["plan", "-f", str(path), "--pools", str(POOLS), *NOW]) == 0
    table = capsys.readouterr().out
    assert main(["plan", "-f", str(path), "--pools", str(POOLS), *NOW, "-o", "wide"]) == 0
    wide = capsys.readouterr().out
    assert wide.startswith(table)
    for pool in ("a100", "h100", "l4"):
        assert f"Pool {pool}" in wide
        assert f"Pool {pool}" not in table


def test_output_is_a_format_and_a_file_goes_to_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, "night-run")
    assert main(["plan", "-f", str(path), "--zone", "DE", *NOW, "--output", str(tmp_path / "plan.json")]) == 2
    assert capsys.readouterr().err == (
        f"error: -o/--output takes a format (table, wide, json, yaml), not '{tmp_path / 'plan.json'}'; to write the "
        "plan to a file use --output-file FILE (with --batch, --output is the JSON Lines file)\n"
    )
    target = tmp_path / "new" / "plan.json"
    assert main(["plan", "-f", str(path), "--zone", "DE", *NOW, "-o", "json", "--output-file", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text())["name"] == "night-run"


def test_stdin_and_multi_document_manifests_plan_every_llmjob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ml}\n---"
    text = manifest(tmp_path, "first", "second", extra=namespace).read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["plan", "-f", "-", "--zone", "SE", *NOW, "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "List"
    assert [i["name"] for i in out["items"]] == ["first", "second"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    assert main(["plan", "-f", "-", "--zone", "SE", *NOW]) == 0
    tables = capsys.readouterr().out.split("\n\n")
    assert [t.splitlines()[0] for t in tables] == ["LLMJob        first", "LLMJob        second"]


def test_a_kubectl_list_is_planned_and_other_kinds_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [yaml.safe_load(JOB.replace(
        "NAME", "from-list"))]}))
    assert main(["plan", "-f", str(listed), "--zone", "SE", *NOW, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "from-list"
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    assert main(["plan", "-f", str(pod)]) == 2
    assert capsys.readouterr().err == f"error: {pod} holds no LLMJob (found: Pod)\n"


def test_flags_of_the_other_mode_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(manifest(tmp_path, "j")), "--capacity", "cap.json"]) == 2
    assert capsys.readouterr().err == "error: --capacity is for --batch\n"
    assert main(["plan", "--batch", "in.jsonl", "--output-file", "x"]) == 2
    assert "--output-file is for -f" in capsys.readouterr().err


def test_batch_output_is_a_file_and_a_format_word_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("")
    assert main(["plan", "--batch", str(src), "-o", "json"]) == 2
    assert capsys.readouterr().err == (
        "error: with --batch, --output names the JSON Lines file to write, and 'json' looks like a format: the batch "
        "output is always JSON Lines (to write a file of that name, pass --output ./json)\n")
    assert main(["plan", "--batch", str(src), "--output", str(tmp_path / "json")]) == 0
    assert (tmp_path / "json").read_text() == ""
