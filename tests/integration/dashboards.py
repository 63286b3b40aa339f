"""The shipped dashboards and alert rules, read as Grafana and Prometheus read them, for the Prometheus tests.

test_prometheus.py (a stand-in operator) and test_prometheus_live.py (the real operator) evaluate the same panel
targets and rules; this module is the one place that walks charts/llmasos/dashboards/*.json and the rule file, and
that expands Grafana's variables ("All" selected) the way each test's time range asks for.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import yaml

from tests.integration.prom import REPO

DASHBOARDS = sorted((REPO / "charts/llmasos/dashboards").glob("*.json"))
RULES = REPO / "charts/llmasos/alerts/llmasos-rules.yaml"


class Target(NamedTuple):
    """One query of one panel: `id` is `<dashboard>:<panel title>:<refId>`; `span` is the dashboard's time range
    (`$__range`), `instant` whether Grafana runs it as an instant query."""

    id: str
    expr: str
    instant: bool
    span: str


def dashboard_targets() -> list[Target]:
    """Every target of every dashboard."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        span = str(board["time"]["from"]).removeprefix("now-")
        for panel in board["panels"]:
            for target in panel["targets"]:
                out.append(Target(f"{path.stem}:{panel['title']}:{target['refId']}", target["expr"],
                                  bool(target.get("instant")), span))
    return out


def dashboard_variables() -> list[tuple[str, str, str]]:
    """(dashboard, label, metric) of every `label_values(metric, label)` variable."""
    out = []
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] == "query":
                metric, label = var["definition"].removeprefix("label_values(").removesuffix(")").split(", ")
                out.append((path.stem, label, metric))
    return out


def expand(expr: str, rate_interval: str, span: str) -> str:
    """Grafana's variables with "All" selected; fails on any variable left over."""
    values = {"$__rate_interval": rate_interval, "$__range": span, "$namespace": ".*", "$node": ".*", "$zone": ".*",
              "$cluster": ".*", "$job": ".*"}
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr


def alert_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule of the shipped rule file, by alert name."""
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}
