"""The checkers platform teams run before they install a chart, over every render of charts/llmasos/ci/*.yaml:

* kubeconform, strict (no unknown field), offline, against Kubernetes' schemas (PyPI `kubernetes-validate`) and the
  chart's own CRDs (tests/chart/schemas.py), over the renders and examples/;
* kube-score: no CRITICAL finding except those docs/operations.md ("Static checks") justifies by check name.

Both binaries are built from their Go modules by e2e/toolchain/build-lint.sh (pinned in versions.env, cached
outside the repository; `make test` builds them first).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, CI_VALUES, KUBE_VERSION, MONITORING_APIS, REPO, run_helm
from tests.chart.schemas import LOCATION, schema_dir

CI_IDS = [p.name for p in CI_VALUES]
# No offline schema exists for the Prometheus Operator's kinds (their CRDs are not ours to ship);
# tests/chart/test_chart_monitoring.py checks what they select and embed.
NO_SCHEMA = "ServiceMonitor,PodMonitor,PrometheusRule"
# kube-score checks whose CRITICAL findings are deliberate, each justified by name in docs/operations.md.
JUSTIFIED = {
    "container-resources": "CPU limit is not set",
    "container-image-pull-policy": "ImagePullPolicy is not set to Always",
}
# Only where the values file itself turns NetworkPolicies off (ci/single-replica-values.yaml).
JUSTIFIED_WITHOUT_NETWORK_POLICY = {"pod-networkpolicy": "The pod does not have a matching NetworkPolicy"}


@pytest.fixture(scope="session")
def lint_bin() -> Path:
    out = subprocess.run([str(REPO / "e2e" / "toolchain" / "build-lint.sh")], capture_output=True, text=True,
                         check=True, timeout=3600).stdout
    return Path(out.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def schemas() -> str:
    return str(schema_dir() / LOCATION)


def render_file(helm: str, values: Path | None, tmp_path: Path) -> Path:
    args = ["template", "llmasos", str(CHART), "--namespace", "llmasos-system", "--kube-version", KUBE_VERSION]
    args += ["-f", str(values)] if values else []
    for api in MONITORING_APIS:
        args += ["--api-versions", api]
    out = tmp_path / f"render-{values.stem if values else 'default'}.yaml"
    out.write_text(run_helm(helm, *args).stdout)
    return out


def kubeconform(lint_bin: Path, schemas: str, *files: Path) -> dict[str, Any]:
    result = subprocess.run([str(lint_bin / "kubeconform"), "-strict", "-summary", "-output", "json",
                             "-kubernetes-version", KUBE_VERSION.rsplit(".", 1)[0] + ".0",
                             "-schema-location", schemas, "-skip", NO_SCHEMA, *map(str, files)],
                            capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(result.stdout)
    bad = [r for r in report["resources"] if r["status"] not in ("statusValid", "statusSkipped")]
    assert not bad, json.dumps(bad, indent=1)[:3000] + result.stderr
    assert result.returncode == 0, result.stderr
    return dict(report["summary"])


@pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
def test_kubeconform_strict_accepts_every_render(helm: str, lint_bin: Path, schemas: str, values: Path,
                                                 tmp_path: Path) -> None:
    summary = kubeconform(lint_bin, schemas, render_file(helm, values, tmp_path))
    assert summary["valid"] >= 5, summary


def test_kubeconform_strict_accepts_the_examples_with_the_crd_schema(lint_bin: Path, schemas: str) -> None:
    examples = sorted((REPO / "examples").glob("*.yaml"))
    summary = kubeconform(lint_bin, schemas, *examples)
    kinds = {d["kind"] for f in examples for d in yaml.safe_load_all(f.read_text()) if d}
    assert "LLMJob" in kinds
    assert summary["valid"] == sum(1 for f in examples for d in yaml.safe_load_all(f.read_text()) if d)


def test_kubeconform_refuses_an_unknown_field(lint_bin: Path, schemas: str, tmp_path: Path) -> None:
    """The negative control: strict validation really reads the converted schemas (core and CRD)."""
    example = next(d for f in sorted((REPO / "examples").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
                   if d and d["kind"] == "LLMJob")
    example["spec"]["notAField"] = 1
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}, "extra": 1}
    for i, doc in enumerate((example, cm)):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(AssertionError, match="statusInvalid"):
            kubeconform(lint_bin, schemas, path)


def critical_findings(lint_bin: Path, render: Path) -> list[tuple[str, str, str]]:
    result = subprocess.run([str(lint_bin / "kube-score"), "score", "-o", "json", str(render)],
                            capture_output=True, text=True, timeout=120, check=False)
    findings = []
    for obj in json.loads(result.stdout) or []:
        for check in obj["checks"]:
            if check["grade"] <= 1 and not check["skipped"]:
                for comment in check["comments"] or [{"summary": ""}]:
                    findings.append((obj["object_name"], check["check"]["id"], comment["summary"]))
    return findings


@pytest.mark.parametrize("values", CI_VALUES, ids=CI_IDS)
def test_kube_score_finds_nothing_critical_that_is_not_justified(helm: str, lint_bin: Path, values: Path,
                                                                tmp_path: Path) -> None:
    allowed = dict(JUSTIFIED)
    if yaml.safe_load(values.read_text()).get("networkPolicy", {}).get("enabled") is False:
        allowed |= JUSTIFIED_WITHOUT_NETWORK_POLICY
    unjustified = [f for f in critical_findings(lint_bin, render_file(helm, values, tmp_path))
                   if allowed.get(f[1]) != f[2]]
    assert not unjustified, "\n".join(" | ".join(f) for f in unjustified)


def test_the_docs_justify_each_accepted_finding_by_name() -> None:
    docs = (REPO / "docs" / "operations.md").read_text()
    section = docs[docs.index("## Static checks"):]
    for check_id in {**JUSTIFIED, **JUSTIFIED_WITHOUT_NETWORK_POLICY}:
        assert f"`{check_id}`" in section, f"docs/operations.md, Static checks, does not justify {check_id}"
