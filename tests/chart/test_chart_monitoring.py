"""Issue 21, point 5: monitoring objects are never skipped silently. Where helm does not know the Prometheus
Operator's API (offline renders), the release notes name what was skipped; `monitoring.skipApiCheck` renders them
anyway; with the API known, every object is rendered and checked against what it must scrape and embed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import CHART, MONITORING_APIS, Render, by_kind, one

MONITORING = CHART / "ci" / "monitoring-values.yaml"
KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart with one more template: a ConfigMap holding the rendered NOTES.txt (helm template does
    not print the notes; this renders the very same template file)."""
    chart = tmp_path_factory.mktemp("notes") / "llmasos"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes-probe}\n"
        'data:\n  notes: {{ include "llmasos/templates/NOTES.txt" . | quote }}\n')
    return chart


def notes(render: Render, chart: Path, **kwargs: object) -> str:
    objects = render(chart=chart, **kwargs)
    probe = [o for o in by_kind(objects, "ConfigMap") if o["metadata"]["name"] == "notes-probe"]
    return str(probe[0]["data"]["notes"])


def test_offline_render_names_what_it_skipped(render: Render, notes_chart: Path) -> None:
    objects = render([MONITORING])
    assert not [o for o in objects if o["kind"] in KINDS]
    text = notes(render, notes_chart, values_files=[MONITORING])
    assert "SKIPPED: ServiceMonitor, PodMonitor, PrometheusRule" in text
    assert "--api-versions monitoring.coreos.com/v1/ServiceMonitor" in text


def test_nothing_skipped_nothing_said(render: Render, notes_chart: Path) -> None:
    assert "SKIPPED" not in notes(render, notes_chart, values_files=[MONITORING], api_versions=MONITORING_APIS)
    assert "SKIPPED" not in notes(render, notes_chart), "monitoring off: nothing was asked for"


def test_the_comment_in_the_ci_values_file_renders_them(render: Render) -> None:
    """The flags the ci file's comment gives are the ones that work (the group/version alone renders nothing)."""
    comment = " ".join(line.lstrip("# ") for line in MONITORING.read_text().splitlines() if line.startswith("#"))
    flags = [f for f in comment.replace("\\", " ").split() if f.startswith("monitoring.coreos.com/v1/")]
    assert sorted(flags) == sorted(MONITORING_APIS)
    assert {o["kind"] for o in render([MONITORING], api_versions=flags)} >= set(KINDS)
    assert not {o["kind"] for o in render([MONITORING], api_versions=["monitoring.coreos.com/v1"])} & set(KINDS)


def test_skip_api_check_renders_them_offline(render: Render) -> None:
    objects = render([MONITORING], set_values=["monitoring.skipApiCheck=true"])
    for kind in KINDS:
        assert len(by_kind(objects, kind)) == 1, kind


def test_rendered_monitors_scrape_the_right_pods(render: Render) -> None:
    objects = render([MONITORING], set_values=["agent.namespace=gpu-agents"], api_versions=MONITORING_APIS)
    service = one(objects, "Service", "-operator-metrics")
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["llmasos-system"]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    pod_monitor = one(objects, "PodMonitor")
    agent = one(objects, "DaemonSet")
    assert pod_monitor["metadata"]["namespace"] == agent["metadata"]["namespace"] == "gpu-agents"
    assert pod_monitor["spec"]["namespaceSelector"]["matchNames"] == ["gpu-agents"]
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= \
        agent["spec"]["template"]["metadata"]["labels"].items()
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} == {"metrics"}
    # The PrometheusRule carries exactly the shipped rule file's groups (the promtool-tested ones).
    shipped = yaml.safe_load((CHART / "alerts" / "llmasos-rules.yaml").read_text())["groups"]
    assert one(objects, "PrometheusRule")["spec"]["groups"] == shipped


# ------------------------------------------------------------------- point 10: scoped dashboards, described panels
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboards_are_scoped_by_cluster_and_job_and_every_panel_is_described(path: Path) -> None:
    import json
    import re

    board = json.loads(path.read_text())
    names = [v["name"] for v in board["templating"]["list"]]
    assert {"cluster", "job"} <= set(names), names
    for var in board["templating"]["list"]:
        if var["name"] in ("cluster", "job"):
            assert var["includeAll"] is True
            assert var["allValue"] == ".*", "All must also match series without the label"
    for panel in board["panels"]:
        assert panel.get("description", "").strip(), f"panel {panel['title']!r} has no description"
        for target in panel.get("targets", []):
            for name, selector in re.findall(r"\b(llmasos_[a-z_]+)(\{[^}]*\})?", target["expr"]):
                assert 'cluster=~"$cluster"' in selector, (panel["title"], name)
                assert 'job=~"$job"' in selector, (panel["title"], name)


ALERT_RULES = [r for g in yaml.safe_load((CHART / "alerts" / "llmasos-rules.yaml").read_text())["groups"]
               for r in g["rules"] if "alert" in r]


def label_lists(expr: str) -> list[tuple[str, set[str]]]:
    """Each `by (...)`, `without (...)` and `on (...)` clause of a PromQL expression with its labels."""
    import re

    return [(kw, {x.strip() for x in labels.split(",") if x.strip()})
            for kw, labels in re.findall(r"\b(by|without|on)\s*\(([^)]*)\)", expr)]


@pytest.mark.parametrize("rule", ALERT_RULES, ids=[r["alert"] for r in ALERT_RULES])
def test_alerts_keep_the_cluster_apart(rule: dict[str, object]) -> None:
    """Point 10 for the alerts: every aggregation and vector match keeps `cluster`, so two clusters feeding one
    Prometheus neither merge into one alert nor break a one-to-one match (a many-to-many error evaluates to nothing:
    the alert would never fire). `job` too where the series come from our own scrapes (not kube-state-metrics)."""
    expr = str(rule["expr"])
    clauses = label_lists(expr)
    assert not [kw for kw, _ in clauses if kw == "without"], "say what is kept (by), not what is dropped"
    for kw, labels in clauses:
        assert "cluster" in labels, f"{kw} ({', '.join(sorted(labels))}) merges clusters"
        if "kube_" not in expr:
            assert "job" in labels, f"{kw} ({', '.join(sorted(labels))}) merges scrape jobs"


def test_the_cluster_check_catches_a_match_on_node_alone() -> None:
    assert label_lists("a < on (node, gpu) b") == [("on", {"node", "gpu"})]
