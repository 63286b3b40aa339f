"""Dashboards and alerts against a real Prometheus scraping a real node agent and the operator's metrics facade.

Every panel query of charts/llmasos/dashboards/*.json and every alert of charts/llmasos/alerts/llmasos-rules.yaml is
evaluated through Prometheus' HTTP API: panels must return finite data; each alert must return exactly the series
the scenario makes it fire for (and none of the healthy ones), and Prometheus itself must fire it from the rules
file. `promtool test rules` checks the `for:` durations on synthetic series. Needs the Debian package `prometheus`;
no cluster (the agent runs on its simulated GPUs from a pods file).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.integration.dashboards import RULES, alert_rules, dashboard_targets
from tests.integration.dashboards import expand as expand_variables
from tests.integration.prom import (
    LATE_JOB,
    NEEDS_PROMETHEUS,
    REPO,
    STALE_ZONE,
    STRANDED_NODE,
    Process,
    Prometheus,
    distinct_free_ports,
    finite_values,
    label_sets,
    refused_port,
    wait_until,
)

pytestmark = [
    pytest.mark.integration,
    NEEDS_PROMETHEUS,
]

# Grafana's variables, as a dashboard with "All" selected and a short window would expand them.
RATE_INTERVAL, RANGE = "10s", "5m"


def expand(expr: str) -> str:
    return expand_variables(expr, RATE_INTERVAL, RANGE)


def panel_queries() -> list[Any]:
    return [pytest.param(t.expr, id=t.id) for t in dashboard_targets()]


@dataclass
class Stack:
    prometheus: Prometheus
    agent_port: int
    down_target: str


def pod(namespace: str, name: str, llmjob: str, gpus: int, power: dict[str, object] | None) -> dict[str, object]:
    annotations = {"llmasos.io/power": json.dumps(power)} if power else {}
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "labels": {"llmasos.io/llmjob": llmjob}, "annotations": annotations},
        "spec": {"containers": [{"name": "w", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
        "status": {"phase": "Running"},
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with contextlib.ExitStack() as stack_ports:
        yield from _stack(tmp_path_factory, stack_ports)


def _stack(tmp_path_factory: pytest.TempPathFactory, stack_ports: contextlib.ExitStack) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "pods.json").write_text(json.dumps({"items": [
        pod("ml", "train-a-w0", "train-a", 2, {"policy": "fraction", "fraction": 0.8}),
        pod("research", "eval-b-w0", "eval-b", 1, None),
    ]}))
    agent_port, op_port, failing_port = distinct_free_ports(3)
    # The agent that is down: a port held bound but not listening, so nothing else can answer on it mid-test.
    down_port = stack_ports.enter_context(refused_port())
    agent = Process([sys.executable, "-m", "llmasos.cli", "node-agent", "--node-name", "n1",
                     "--gpu-backend", "sim", "--sim-product", "nvidia-a100-80gb", "--sim-gpus", "4",
                     "--pods-file", str(tmp / "pods.json"), "--report-file", str(tmp / "report.json"),
                     "--state-file", str(tmp / "state.json"), "--sim-hardware-file", str(tmp / "gpus.json"),
                     "--gpu-mapping", "fallback", "--interval", "0.5", "--report-interval", "5",
                     "--metrics-port", str(agent_port), "--metrics-addr", "127.0.0.1", "--log-level", "WARNING"],
                    tmp / "agent.log")
    operator = Process([sys.executable, "-m", "tests.integration.prom", "operator", "--port", str(op_port),
                        "--agent-port", str(failing_port)], tmp / "operator.log", cwd=REPO)
    # The rules as shipped, with every `for:` set to 0s so Prometheus fires them within the test.
    rules_now = tmp / "rules-for-0s.yaml"
    rules_now.write_text(re.sub(r"(?m)^(\s+for:) .*$", r"\1 0s", RULES.read_text()))
    prom = Prometheus(tmp / "prom", {
        "llmasos-operator": [f"127.0.0.1:{op_port}"],
        "llmasos-agent": [f"127.0.0.1:{agent_port}", f"127.0.0.1:{failing_port}", f"127.0.0.1:{down_port}"],
    }, [rules_now])
    try:
        prom.start()
        # Two samples of every counter inside a 10 s window, and a cap applied by the real agent.
        wait_until(lambda: len(prom.query("rate(llmasos_emissions_grams_total[10s]) > 0")) == 2, 60,
                   f"operator metrics to be scraped; operator log: {operator.log()}")
        wait_until(lambda: len(prom.query('rate(llmasos_gpu_energy_joules_total{node="n1"}[10s]) > 0')) >= 3, 60,
                   f"agent energy to be scraped; agent log: {agent.log()}")
        wait_until(lambda: len(prom.query("up")) == 4, 30, "Prometheus to have scraped all four targets")
        yield Stack(prom, agent_port, f"127.0.0.1:{down_port}")
    finally:
        prom.stop()
        operator.stop()
        agent.stop()


def test_targets_are_scraped(stack: Stack) -> None:
    up = {s["metric"]["instance"]: float(s["value"][1]) for s in stack.prometheus.query("up")}
    assert sorted(up.values()) == [0.0, 1.0, 1.0, 1.0]
    assert up[stack.down_target] == 0.0
    # The real agent applied the 0.8 x 400 W cap to exactly the two GPUs of train-a-w0.
    capped = stack.prometheus.query('llmasos_gpu_power_limit_watts{node="n1", pod="train-a-w0"}')
    assert sorted(finite_values(capped)) == [320.0, 320.0]


@pytest.mark.parametrize("expr", panel_queries())
def test_every_dashboard_panel_returns_data(stack: Stack, expr: str) -> None:
    samples = stack.prometheus.query(expand(expr))
    assert samples, f"no data for {expand(expr)}"
    assert finite_values(samples), f"only NaN/Inf for {expand(expr)}: {samples}"


def test_fleet_savings_panels_match_the_accounting(stack: Stack) -> None:
    """The sample fleet's pool choice saves 1000/900 - 1 of actual emissions: the panel's ratio must say so."""
    ratio = stack.prometheus.query(
        'sum(llmasos_counterfactual_emissions_grams_total{scenario="first_pool"}) / sum(llmasos_emissions_grams_total)')
    assert finite_values(ratio) == [pytest.approx(1000 / 900, rel=1e-3)]


# alert -> (labels compared, the label sets it must fire for in this scenario)
EXPECTED_FIRING: dict[str, tuple[tuple[str, ...], set[tuple[str, ...]]]] = {
    "LLMasOSCarbonDataStale": (("zone",), {(STALE_ZONE,)}),
    "LLMasOSCarbonSourceDegraded": (("zone",), {(STALE_ZONE,)}),
    "LLMasOSGpuCapNotRestored": (("node", "gpu"), {(STRANDED_NODE, "0")}),
    "LLMasOSNodeAgentStuck": (("node",), {(STRANDED_NODE,)}),
    "LLMasOSNodeAgentDown": (("instance",), set()),  # filled in with the closed port below
    "LLMasOSJobNearDeadlineStillDeferred": (("namespace", "llmjob"), {LATE_JOB}),
    # The sample operator posts a DeadlineMissed Warning every few ticks.
    "LLMasOSJobMissedDeadline": (("job",), {("llmasos-operator",)}),
    # The sample operator records no leadership (its gauge stays 0), as a replica that never leads.
    "LLMasOSOperatorNoLeader": (("job",), {("llmasos-operator",)}),
    # Quiet here (the operator is up, no errors; no kube-state-metrics series): shown firing by promtool below.
    "LLMasOSOperatorDown": ((), set()),
    "LLMasOSOperatorCrashLooping": (("namespace", "pod"), set()),
    "LLMasOSOperatorReconcileErrors": (("job", "kind"), set()),
    "LLMasOSNodeAgentDaemonSetNotReady": (("namespace", "daemonset"), set()),
}
FIRING_HERE = {alert for alert, (_, expected) in EXPECTED_FIRING.items() if expected or alert == "LLMasOSNodeAgentDown"}
ALERT_TESTS = RULES.parent / "tests" / "llmasos-rules.test.yaml"


def test_every_alert_has_an_expectation() -> None:
    assert set(alert_rules()) == set(EXPECTED_FIRING)


@pytest.mark.parametrize("alert", sorted(EXPECTED_FIRING))
def test_alert_expression_fires_exactly_when_it_should(stack: Stack, alert: str) -> None:
    keys, expected = EXPECTED_FIRING[alert]
    if alert == "LLMasOSNodeAgentDown":
        expected = {(stack.down_target,)}
    expr = alert_rules()[alert]["expr"]
    if alert == "LLMasOSJobMissedDeadline":  # an increase() needs two scrapes that differ: the counter's first ones
        wait_until(lambda: bool(stack.prometheus.query(expr)), 15, "a DeadlineMissed warning counted twice")
    samples = stack.prometheus.query(expr)
    assert label_sets(samples, keys) == expected


def test_prometheus_fires_the_rules_from_the_file(stack: Stack) -> None:
    def firing() -> set[str]:
        return {a["labels"]["alertname"] for a in stack.prometheus.api("alerts")["alerts"] if a["state"] == "firing"}

    wait_until(lambda: firing() == FIRING_HERE, 30, "every alert this scenario makes true to fire")
    groups = stack.prometheus.api("rules")["groups"]
    assert {r["health"] for g in groups for r in g["rules"]} == {"ok"}


def test_promtool_checks_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool ships with the prometheus package"
    check = subprocess.run([promtool, "check", "rules", "--lint=all", str(RULES)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr


def test_promtool_unit_tests_of_every_alert() -> None:
    """charts/llmasos/alerts/tests/: every alert quiet before its `for:` and firing after it, with its labels and
    its annotations rendered (so a template that does not render fails), on synthetic series."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool ships with the prometheus package"
    doc = yaml.safe_load(ALERT_TESTS.read_text())
    fired = {case["alertname"] for t in doc["tests"] for case in t["alert_rule_test"] if case["exp_alerts"]}
    assert fired == set(alert_rules()), f"alerts without a firing unit test: {set(alert_rules()) - fired}"
    run = subprocess.run([promtool, "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_links_its_runbook() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    anchors = {m.lower() for m in re.findall(r"(?m)^## (LLMasOS\w+)", runbooks)}
    for alert, rule in alert_rules().items():
        url = rule["annotations"]["runbook_url"]
        assert url.endswith("docs/runbooks.md#" + alert.lower()), url
        assert alert.lower() in anchors, f"docs/runbooks.md has no section for {alert}"
