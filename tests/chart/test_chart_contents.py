"""`helm template` checks of what the chart ships besides the workloads: monitoring objects gated on `enabled` AND on
the Prometheus Operator API, dashboards and alerts embedded from the files beside the chart, CRDs identical to
crds/ (with the kopf peering CRDs), every value in values.yaml documented, and values.schema.json.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import (
    CHART,
    MONITORING_APIS,
    REPO,
    HelmError,
    Render,
    by_kind,
    one,
)

# --------------------------------------------------------------------------------------------------- monitoring
GATED = (("monitoring.serviceMonitor.enabled", "ServiceMonitor", MONITORING_APIS[0]),
         ("monitoring.podMonitor.enabled", "PodMonitor", MONITORING_APIS[1]),
         ("monitoring.prometheusRule.enabled", "PrometheusRule", MONITORING_APIS[2]))


@pytest.mark.parametrize(("flag", "kind", "api"), GATED, ids=[g[1] for g in GATED])
@pytest.mark.parametrize(("enabled", "api_present"), [(False, False), (True, False), (False, True), (True, True)])
def test_monitoring_objects_need_enabled_and_the_api(render: Render, tmp_path: Path, flag: str, kind: str, api: str,
                                                     enabled: bool, api_present: bool) -> None:
    chart = chart_with_monitoring_files(tmp_path)
    objects = render(set_values=[f"{flag}={str(enabled).lower()}"], api_versions=[api] if api_present else [],
                     chart=chart)
    assert len(by_kind(objects, kind)) == (1 if enabled and api_present else 0)


def chart_with_monitoring_files(tmp_path: Path) -> Path:
    """A copy of the chart whose dashboards/ and alerts/ hold known test files (the real ones may change)."""
    chart = tmp_path / "llmasos"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("dashboards", "alerts"))
    (chart / "dashboards").mkdir()
    (chart / "alerts").mkdir()
    (chart / "dashboards" / "Test_Board.json").write_text(json.dumps({"title": "t", "panels": []}))
    (chart / "dashboards" / "second.json").write_text(json.dumps({"title": "s"}))
    (chart / "alerts" / "a.yaml").write_text(yaml.safe_dump(
        {"groups": [{"name": "g1", "rules": [{"alert": "A", "expr": "up == 0"}]}]}))
    (chart / "alerts" / "b.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
         "spec": {"groups": [{"name": "g2", "rules": [{"alert": "B", "expr": "vector(1)"}]}]}}))
    return chart


def test_dashboards_and_alerts_are_embedded(render: Render, tmp_path: Path) -> None:
    chart = chart_with_monitoring_files(tmp_path)
    objects = render([CHART / "ci" / "monitoring-values.yaml"], api_versions=MONITORING_APIS, chart=chart)
    maps = {m["metadata"]["name"]: m for m in by_kind(objects, "ConfigMap")}
    assert set(maps) == {"llmasos-dashboard-test-board", "llmasos-dashboard-second"}
    board = maps["llmasos-dashboard-test-board"]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["annotations"] == {"grafana_folder": "LLMasOS"}
    assert json.loads(board["data"]["Test_Board.json"]) == {"title": "t", "panels": []}
    rule = one(objects, "PrometheusRule")
    assert [g["name"] for g in rule["spec"]["groups"]] == ["g1", "g2"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert not by_kind(render(chart=chart), "ConfigMap"), "dashboards are opt-in"


def test_shipped_dashboards_and_alerts_render(render: Render) -> None:
    """Whatever dashboards/*.json and alerts/*.yaml hold now: one ConfigMap per dashboard, valid JSON, rule groups."""
    objects = render([CHART / "ci" / "monitoring-values.yaml"], api_versions=MONITORING_APIS)
    files = sorted(p.name for p in (CHART / "dashboards").glob("*.json"))
    maps = by_kind(objects, "ConfigMap")
    assert sorted(k for m in maps for k in m["data"]) == files
    for m in maps:
        for text in m["data"].values():
            json.loads(text)
    alert_files = list((CHART / "alerts").glob("*.y*ml"))
    rules = by_kind(objects, "PrometheusRule")
    assert len(rules) == (1 if alert_files else 0)
    for rule in rules:
        assert all(g["rules"] for g in rule["spec"]["groups"])
    monitors = by_kind(objects, "ServiceMonitor") + by_kind(objects, "PodMonitor")
    assert len(monitors) == 2
    service = one(objects, "Service", "-operator-metrics")
    assert one(objects, "ServiceMonitor")["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()


# ------------------------------------------------------------------------------------------- CRDs and values
def test_chart_crds_are_identical_to_the_generated_ones() -> None:
    generated = {p.name: p.read_bytes() for p in (REPO / "crds").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated, "crds/ is empty"
    assert shipped.keys() == generated.keys()
    for name in generated:
        assert shipped[name] == generated[name], f"charts/llmasos/crds/{name} differs from crds/{name}: cp it"


def test_chart_ships_the_peering_crds_it_uses(render: Render) -> None:
    crd_names = {d["metadata"]["name"] for p in (CHART / "crds").glob("*.yaml") for d in yaml.safe_load_all(
        p.read_text()) if d}
    assert {"llmjobs.llmasos.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= crd_names


_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/\"]+):(?P<rest>.*)$")


def undocumented_values(text: str) -> list[str]:
    """Leaf keys of values.yaml with no `# --` comment on themselves or on an enclosing key (helm-docs rules)."""
    missing, stack = [], []  # stack: (indent, key, documented)
    comment: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        if not stripped or stripped.startswith("- "):
            if not stripped:
                comment = []
            continue
        m = _KEY.match(line)
        if not m:
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = any(c.startswith("# --") for c in comment) or any(d for _, _, d in stack)
        path = ".".join([k for _, k, _ in stack] + [m["key"]])
        rest = m["rest"].strip()
        nxt = next((x for x in lines[i + 1:] if x.strip() and not x.strip().startswith("#")), "")
        has_children = not rest and (len(nxt) - len(nxt.lstrip())) > indent and not nxt.strip().startswith("- ")
        if not has_children and not documented:
            missing.append(path)
        stack.append((indent, m["key"], documented))
        comment = []
    return missing


def test_every_value_is_documented() -> None:
    assert undocumented_values((CHART / "values.yaml").read_text()) == []


def test_documentation_check_finds_gaps() -> None:
    text = "# -- ok\na: 1\nb:\n  # -- ok\n  c: 2\n  d: 3\ne:\n  - x\n# -- whole map\nf:\n  g: 1\n"
    assert undocumented_values(text) == ["b.d", "e"]


def test_values_schema_accepts_ci_values_and_rejects_nonsense(render: Render) -> None:
    with pytest.raises(HelmError, match=r"carbon/sources"):
        render(set_values=["carbon.sources={sunshine}"], expect_error=True)
    with pytest.raises(HelmError, match=r"carbon/trace/offset"):
        render(set_values=["carbon.trace.offset=2y"], expect_error=True)
    with pytest.raises(HelmError, match=r"additional properties 'sourec'"):
        render(set_values=["carbon.sourec=trace"], expect_error=True)
    with pytest.raises(HelmError, match=r"agent/gpuBackend"):
        render(set_values=["agent.gpuBackend=cuda"], expect_error=True)
