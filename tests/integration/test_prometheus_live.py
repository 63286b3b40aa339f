"""Dashboards and alerts against a real Prometheus scraping the REAL operator and node agents on the local cluster.

Where tests/integration/test_prometheus.py feeds the panels from a stand-in operator, here everything Prometheus
scrapes is the product: `llmasos operator` (its own process, watching only this module's namespaces and the agents'
report namespace) and two `llmasos node-agent` processes on the fake a100 nodes (simulated GPUs). Scrape jobs are
named as the chart's monitors name them (`llmasos-operator`; the PodMonitor's `llmasos-system/llmasos-agent`, which
the LLMasOSNodeAgentDown matcher `job=~".*llmasos.*agent.*"` must catch). Scrape and rule evaluation every 1 s; the
rule file is loaded as shipped except every `for:` is 0s (promtool checks the durations in test_prometheus.py).

Activity, all through the API:
* `train` (immediate, pool a100, 2 x 4 GPUs, `power: {policy: fraction, fraction: 0.8}`, runs 20 s) and `eval`
  (immediate, 1 GPU, runs 35 s, so a second job finishes after the first was scraped);
* deadline jobs (maxDelay 30h, expectedDuration 2h): `wait-em` in the a100 pool's zone US-MIDA-PJM, whose
  Electricity Maps forecast (a stub on 127.0.0.1 for a token whose plan covers that zone only) has a dip 6 h ahead,
  so it stays Deferred; `wait-se` with zone SE, outside the token's plan: 403, planned on the shipped trace (a real
  fallback, `degraded`; whether it waits is the trace's call, nothing depends on it); `nodata` with zone FR, which no
  configured source (electricitymaps, trace) covers: planned on no data (it starts now), and every accounting pass
  while it runs fails to get FR's history, so the operator counts carbon source errors for real (it runs 40 s, long
  enough to be metered whichever agent it lands on);
* the agent of gpu-a100-001 is SIGKILLed while it holds train's caps; train ends while it is down (its caps stay on
  the GPUs); it is started again and restores them.
Then the operator must have written status.carbon for train and eval, and its counters must equal those objects.

Checked for data, evaluated as Grafana would (instant targets at the end with `$__range` = the dashboard's time
range; time-series targets as range queries over the run, step 1 s, `$__rate_interval` 4 s; variables "All"):
every target of every dashboard in charts/llmasos/dashboards/ returns finite data, except the one the operator does
not export (below). Some are checked for their value too (EXPECT): 16 GPUs, 8 capped at 320 W during train,
energy/emissions/energy per LLMJob > 0, a deferred job, one zone on a fallback, source errors > 0, no cap left
behind. Every dashboard variable (`label_values`) lists the live nodes, namespaces and zones.

Alerts (every expression of charts/llmasos/alerts/ is evaluated without error; Prometheus reports every rule ok):
* shown firing for real: LLMasOSNodeAgentDown (exactly the killed agent's instance, expression and Prometheus' own
  alert, and quiet again after the restart); LLMasOSCarbonSourceDegraded (exactly zone SE, both ways);
* quiet now, because the live run cannot honestly produce their condition (their firing is shown on synthetic series
  by test_prometheus.py): LLMasOSGpuCapNotRestored (needs restores that fail, i.e. NVML errors; the simulated GPUs
  never fail, and a killed agent's caps are invisible - which is what LLMasOSNodeAgentDown is for: the stranded caps
  are asserted on the simulated hardware while the agent is down, then restored); LLMasOSNodeAgentStuck (a loop
  stopped for 2 min while scrapes work); LLMasOSCarbonDataStale (data older than 3 h: the Electricity Maps client
  refuses such data and the trace is re-issued hourly); LLMasOSJobNearDeadlineStillDeferred (the deferred jobs'
  latest start is ~28 h away).

The deferred-jobs series carry planned_start, latest_start and deadline, and are dropped when the LLMJob is deleted.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.localcluster import LocalCluster
from tests.integration.agent_proc import AgentProcess
from tests.integration.dashboards import RULES, alert_rules, dashboard_targets, dashboard_variables, expand
from tests.integration.kube import AdminApi, llmjob, llmjob_path, wait_for, wait_phase
from tests.integration.operator_proc import OperatorProcess
from tests.integration.prom import (
    NEEDS_PROMETHEUS,
    ElectricityMapsStub,
    Prometheus,
    forecast_with_dip,
    label_sets,
    rules_firing_at_once,
)
from tests.integration.prom_live import (
    Live,
    by_llmjob,
    by_namespace,
    carbon_final,
    deadline_job,
    delete_namespaces,
    equals,
    instant,
    instant_sum,
    positive,
    settle,
    values_of,
)

pytestmark = [
    pytest.mark.integration,
    NEEDS_PROMETHEUS,
]

NODES = ("gpu-a100-000", "gpu-a100-001")
KILLED = NODES[1]
AGENT_NS = "llmasos-system"
OPERATOR_JOB, AGENT_JOB = "llmasos-operator", f"{AGENT_NS}/llmasos-agent"
EM_ZONE, TRACE_ZONE, NO_DATA_ZONE = "US-MIDA-PJM", "SE", "FR"  # a100 pool zone; outside the plan; nowhere
DEFAULT_MW, CAPPED_MW = 400_000, 320_000
RATE_INTERVAL = "4s"  # Grafana: max($__interval + scrape interval, 4 x scrape interval) with 1 s scrapes and steps
TOKEN = "prom-live-token-5e1f"


@pytest.fixture(scope="module")
def live(cluster: LocalCluster, api: AdminApi, crds: None, artifacts: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("prom-live")
    if api.request("GET", f"/api/v1/namespaces/{AGENT_NS}").status_code == 404:
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": AGENT_NS}})
    with contextlib.ExitStack() as cleanup:  # in reverse: Prometheus, agents, namespaces, operator, stub
        train_ns, plan_ns = api.namespace("prom"), api.namespace("prom")
        remove_namespaces = functools.partial(delete_namespaces, api, [train_ns, plan_ns])
        cleanup.callback(remove_namespaces)  # in case the operator never started
        em = ElectricityMapsStub({EM_ZONE: forecast_with_dip(EM_ZONE, 6, datetime.now(UTC) - timedelta(minutes=30))})
        cleanup.callback(em.stop)
        em.start()
        operator = OperatorProcess(cluster, artifacts, "prom-live", {
            "LLMASOS_RESYNC_SECONDS": "5",
            # Only this module's namespaces (and the agents' reports): never another test's jobs.
            "LLMASOS_NAMESPACES": f"{train_ns},{plan_ns},{AGENT_NS}",
            "LLMASOS_ELECTRICITYMAPS_TOKEN": TOKEN, "LLMASOS_ELECTRICITYMAPS_URL": em.url,
            "LLMASOS_CARBON_SOURCES": "electricitymaps,trace",
        })
        cleanup.callback(operator.stop)
        operator.start()
        cleanup.callback(remove_namespaces)  # while the operator runs: it removes its finalizers from the LLMJobs
        agents = {n: AgentProcess(cluster, n, "nvidia-a100-80gb", tmp, AGENT_NS) for n in NODES}
        for agent in agents.values():
            cleanup.callback(agent.stop)
            agent.start()
        instances = {n: f"127.0.0.1:{a.metrics_port}" for n, a in agents.items()}
        prom = Prometheus(tmp / "prom", {OPERATOR_JOB: [f"127.0.0.1:{operator.metrics_port}"],
                                         AGENT_JOB: list(instances.values())},
                          [rules_firing_at_once(RULES, tmp / "rules-for-0s.yaml")])
        cleanup.callback(prom.stop)
        prom.start()
        wait_for(lambda: instant_sum(prom, "up") == 3, 60, what="operator and both agents scraped")
        wait_for(lambda: instant_sum(prom, "count(llmasos_gpu_info)") == 16, 30, what="16 GPUs in the inventory")
        start = time.time() - 2
        live = Live(prom, operator, em, api, start, train_ns, plan_ns, instances[KILLED])

        api.create(llmjob_path(plan_ns), deadline_job("wait-em"))
        api.create(llmjob_path(plan_ns), deadline_job("wait-se", zone=TRACE_ZONE))
        # Runs long enough to be metered after the agent restart: each accounting pass then fails for real.
        api.create(llmjob_path(plan_ns), deadline_job("nodata", runs="40s", zone=NO_DATA_ZONE))
        api.create(llmjob_path(train_ns), llmjob(
            "train", placement={"nodePools": ["a100"]}, parallelism={"strategy": "ddp", "nodes": 2, "gpusPerNode": 4},
            power={"policy": "fraction", "fraction": 0.8}, annotations={"sim.llmasos.io/duration": "20s"}))
        api.create(llmjob_path(plan_ns), llmjob(
            "eval", placement={"nodePools": ["a100"]}, parallelism={"strategy": "ddp", "nodes": 1, "gpusPerNode": 1},
            annotations={"sim.llmasos.io/duration": "35s"}))

        # train's 8 GPUs capped at 320 W, seen by Prometheus and on the simulated hardware.
        capped = f'llmasos_gpu_power_limit_watts{{namespace="{train_ns}", llmjob="train"}}'
        wait_for(lambda: sorted(instant(live, capped)) == [320.0] * 8, 60,
                 what=f"train's 8 GPUs capped in Prometheus; agent log: {agents[KILLED].log_tail()}")
        live.while_capped["hardware"] = {n: sorted(a.limits_mw().values()) for n, a in agents.items()}
        live.while_capped["Capped GPUs"] = instant(live, panel_query("llmasos-gpu-power:Capped GPUs:A"))

        # SIGKILL one agent while it holds caps; train's pods end while it is down.
        agents[KILLED].kill()
        wait_for(lambda: instant(live, f'up{{instance="{live.killed_instance}"}}') == [0.0], 15,
                 what="the killed agent's scrape to fail")
        settle(lambda: "LLMasOSNodeAgentDown" in live.firing_names(), 10)  # asserted by the tests, not here
        live.while_down["firing"] = live.firing()
        live.while_down["exprs"] = {name: live.prom.query(rule["expr"]) for name, rule in alert_rules().items()}
        wait_phase(api, train_ns, "train", "Succeeded", timeout=90)
        live.while_down["hardware"] = sorted(agents[KILLED].limits_mw().values())
        live.while_down["Caps left behind"] = instant(
            live, panel_query("llmasos-gpu-power:Caps left behind:A"))

        agents[KILLED].start()
        wait_for(lambda: set(agents[KILLED].limits_mw().values()) == {DEFAULT_MW}, 30,
                 what="the restarted agent to restore the caps train left behind")
        wait_for(lambda: instant(live, f'up{{instance="{live.killed_instance}"}}') == [1.0], 15,
                 what="the restarted agent to be scraped")
        settle(lambda: "LLMasOSNodeAgentDown" not in live.firing_names(), 10)
        restores = f'llmasos_agent_events_total{{node="{KILLED}", event="restores"}}'
        settle(lambda: bool(instant(live, restores)), 10)  # shown from the new agent's first pass on
        live.after_restart["restores"] = instant(live, restores)

        wait_phase(api, plan_ns, "eval", "Succeeded", timeout=90)
        for ns, name in ((train_ns, "train"), (plan_ns, "eval")):
            try:
                live.carbon[name] = wait_for(functools.partial(carbon_final, api, ns, name), 60)
            except AssertionError:
                status = api.get(llmjob_path(ns, name)).get("status", {})
                summary = {k: status.get(k) for k in ("phase", "power", "carbon")}
                raise AssertionError(f"no final status.carbon for {name}: {json.dumps(summary)[:3000]}") from None
        wait_for(lambda: api.get(llmjob_path(plan_ns, "nodata")).get("status", {}).get("power", {}).get(
            "energyJoules", 0) > 0, 60, what="nodata to be metered by an agent")
        wait_phase(api, plan_ns, "nodata", "Succeeded", timeout=60)
        (artifacts / "prom-live-llmjobs.json").write_text(json.dumps(
            [api.get(llmjob_path(ns)) for ns in (train_ns, plan_ns)], indent=1))
        # The last counter increments must be scraped before the panels are evaluated.
        total = sum(c["energyKWh"] for c in live.carbon.values()) * 3.6e6
        settle(lambda: instant_sum(prom, "sum(llmasos_energy_joules_total)") >= total - 1, 20)
        time.sleep(2)
        yield live


def panel_query(target_id: str) -> str:
    """One dashboard target, expanded over its dashboard's time range."""
    target = next(t for t in dashboard_targets() if t.id == target_id)
    return expand(target.expr, RATE_INTERVAL, target.span)


# ------------------------------------------------------------------------------------------------ dashboards
KNOWN_GAPS: dict[str, pytest.MarkDecorator] = {}


# Beyond "finite data": what the live run makes the answer (instant targets: at the end of the run).
EXPECT: dict[str, Callable[[list[dict[str, Any]], Live], bool]] = {
    "llmasos-gpu-power:GPUs:A": equals(16),
    "llmasos-gpu-power:Caps left behind:A": equals(0),
    "llmasos-gpu-power:Capped GPUs:A": equals(0),  # 8 while train ran: see test_caps_while_the_job_ran
    "llmasos-gpu-power:Node GPU power:A": positive,
    "llmasos-fleet-emissions:Emissions:A": positive,
    "llmasos-fleet-emissions:Energy:A": positive,
    "llmasos-fleet-emissions:Achieved intensity:A": positive,
    "llmasos-fleet-emissions:Emission rate by namespace:A": by_namespace,
    "llmasos-fleet-emissions:Planned vs achieved intensity:A": positive,
    "llmasos-namespace-energy:IT energy by namespace:A": by_namespace,
    "llmasos-namespace-energy:Facility energy by namespace:A": by_namespace,
    "llmasos-namespace-energy:Emissions by namespace:A": by_namespace,
    "llmasos-namespace-energy:GPU power by namespace:A": by_namespace,
    "llmasos-namespace-energy:GPU energy by LLMJob:A": by_llmjob,
    "llmasos-namespace-energy:Idle GPU energy:A": positive,
    "llmasos-namespace-energy:PUE in effect:A": lambda result, live: values_of(result) == [pytest.approx(1.2, 1e-3)],
    "llmasos-deferred-jobs:Deferred now:A": positive,
    "llmasos-deferred-jobs:Jobs started:A": positive,
    "llmasos-deferred-jobs:Past their latest start:A": equals(0),
    "llmasos-carbon-sources:Zones on a fallback source:A": equals(1),
    "llmasos-carbon-sources:Source errors:A": positive,
}


def test_every_dashboard_has_expectations_only_for_its_targets() -> None:
    ids = {tid for tid, _, _, _ in dashboard_targets()}
    assert set(EXPECT) <= ids
    assert set(KNOWN_GAPS) <= ids


@pytest.mark.parametrize(("target_id", "expr", "is_instant", "span"), [
    pytest.param(*t, id=t[0], marks=KNOWN_GAPS.get(t[0], ())) for t in dashboard_targets()])
def test_every_dashboard_panel_returns_data(live: Live, target_id: str, expr: str, is_instant: bool,
                                            span: str) -> None:
    query = expand(expr, RATE_INTERVAL, span)
    result = live.prom.query(query) if is_instant else live.prom.query_range(query, live.start, time.time(), 1.0)
    assert values_of(result), f"no finite data for {query}: {result}"
    if target_id in EXPECT:
        assert EXPECT[target_id](result, live), f"unexpected value for {query}: {result}"


@pytest.mark.parametrize(("board", "label", "metric"), dashboard_variables(),
                         ids=[f"{b}:{label}" for b, label, _ in dashboard_variables()])
def test_every_dashboard_variable_lists_the_live_values(live: Live, board: str, label: str, metric: str) -> None:
    expected = {"node": set(NODES), "zone": {EM_ZONE, TRACE_ZONE},
                "namespace": {live.plan_ns} if "deferred" in metric else {live.train_ns, live.plan_ns},
                # Every scrape job of the release (operator and agents); no series here carries a cluster label.
                "job": {OPERATOR_JOB, AGENT_JOB}, "cluster": set()}[label]
    assert expected <= set(live.prom.label_values(label, metric))


def test_caps_while_the_job_ran(live: Live) -> None:
    assert live.while_capped["Capped GPUs"] == [8.0]
    for node in NODES:
        assert live.while_capped["hardware"][node] == [CAPPED_MW] * 4 + [DEFAULT_MW] * 4


def test_operator_counters_equal_status_carbon(live: Live) -> None:
    """The facade adds status.carbon deltas: since the operator started before the jobs, each namespace's counters
    must equal the sum of its LLMJobs' status.carbon (every job, including ones the planner started)."""
    def mismatches() -> list[tuple[str, str, list[float], float]]:
        out = []
        for ns in (live.train_ns, live.plan_ns):
            jobs = live.api.get(llmjob_path(ns))["items"]
            carbon = [j["status"]["carbon"] for j in jobs if j.get("status", {}).get("carbon")]
            for metric, key, scale in (("llmasos_energy_joules_total", "energyKWh", 3.6e6),
                                       ("llmasos_facility_energy_joules_total", "facilityEnergyKWh", 3.6e6),
                                       ("llmasos_emissions_grams_total", "gCO2e", 1.0)):
                exported = instant(live, f'sum({metric}{{namespace="{ns}"}})')
                expected = sum(c[key] for c in carbon) * scale
                if exported != [pytest.approx(expected, rel=1e-6)]:
                    out.append((metric, ns, exported, expected))
        return out

    # Jobs the planner started may still be accounted: allow a status write and a scrape to settle. (A second,
    # clusterwide operator on the same cluster - another session's test - also writes these objects and breaks this.)
    wait_for(lambda: not mismatches(), 20, what="counters equal to status.carbon", interval=1)
    assert live.carbon["train"]["gCO2e"] > 0
    assert live.carbon["eval"]["gCO2e"] > 0


# ------------------------------------------------------------------------------------------------ alerts
QUIET = {
    "LLMasOSGpuCapNotRestored": "needs restores that fail (NVML errors); simulated GPUs never fail",
    "LLMasOSNodeAgentStuck": "needs a control loop stopped for 2 min while scrapes still work",
    "LLMasOSCarbonDataStale": "needs data older than 3 h, which the Electricity Maps client refuses",
    "LLMasOSJobNearDeadlineStillDeferred": "the deferred jobs' latest start is about 28 h away",
    "LLMasOSJobMissedDeadline": "the deadline jobs are deferred about 28 h before their deadline; none passes",
    "LLMasOSOperatorDown": "the operator is up and scraped",
    "LLMasOSOperatorNoLeader": "the operator runs standalone, so it leads (llmasos_operator_leader 1)",
    "LLMasOSOperatorReconcileErrors": "needs more than 10 failed passes of one kind in 15 min",
    "LLMasOSOperatorCrashLooping": "needs kube-state-metrics series (no kube-state-metrics here)",
    "LLMasOSNodeAgentDaemonSetNotReady": "needs kube-state-metrics series (no kube-state-metrics here)",
}
FIRING = {"LLMasOSNodeAgentDown", "LLMasOSCarbonSourceDegraded"}


def test_every_alert_is_covered() -> None:
    assert set(alert_rules()) == set(QUIET) | FIRING


@pytest.mark.parametrize("alert", sorted(alert_rules()))
def test_every_alert_expression_is_evaluated(live: Live, alert: str) -> None:
    expr = alert_rules()[alert]["expr"]
    assert live.prom.query_error(expr) is None
    if alert in QUIET:
        assert live.prom.query(expr) == [], f"{alert} matches although {QUIET[alert]}"


def test_prometheus_evaluates_every_rule_without_error(live: Live) -> None:
    rules = [r for g in live.prom.api("rules")["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} == set(alert_rules())
    assert {r["health"] for r in rules} == {"ok"}, [r.get("lastError") for r in rules]


def test_node_agent_down_fires_for_exactly_the_killed_agent(live: Live) -> None:
    down = live.while_down["exprs"]["LLMasOSNodeAgentDown"]
    assert label_sets(down, ("job", "instance")) == {(AGENT_JOB, live.killed_instance)}
    fired = {dict(labels)["instance"] for name, labels in live.while_down["firing"] if name == "LLMasOSNodeAgentDown"}
    assert fired == {live.killed_instance}
    # Its caps stayed on the GPUs (SIGKILL: nothing restored) but are invisible to Prometheus, as the rule says.
    assert live.while_down["hardware"] == [CAPPED_MW] * 4 + [DEFAULT_MW] * 4
    assert live.while_down["Caps left behind"] == [0.0]
    assert live.while_down["exprs"]["LLMasOSGpuCapNotRestored"] == []
    # After the restart: scraped again, the caps restored (counted as agent events), the alert quiet.
    assert live.after_restart["restores"]
    assert live.after_restart["restores"][0] >= 4
    assert live.prom.query(alert_rules()["LLMasOSNodeAgentDown"]["expr"]) == []


def test_carbon_source_degraded_fires_for_exactly_the_zone_outside_the_plan(live: Live) -> None:
    expr = alert_rules()["LLMasOSCarbonSourceDegraded"]["expr"]
    assert label_sets(live.prom.query(expr), ("zone",)) == {(TRACE_ZONE,)}
    fired = {dict(labels)["zone"] for name, labels in live.firing() if name == "LLMasOSCarbonSourceDegraded"}
    assert fired == {TRACE_ZONE}
    sources = {s["metric"]["zone"]: s["metric"]["source"]
               for s in live.prom.query("llmasos_carbon_data_timestamp_seconds")}
    assert sources == {EM_ZONE: "electricitymaps", TRACE_ZONE: "trace"}
    # The operator's real client asked the stub: the plan's zone answered, the others were refused.
    asked = {(zone, status) for path, zone, status in live.em.requests if path.endswith("/forecast")}
    assert {(EM_ZONE, 200), (TRACE_ZONE, 403), (NO_DATA_ZONE, 403)} <= asked
    assert live.firing_names() == {"LLMasOSCarbonSourceDegraded"}


def test_deferred_series_of_a_deleted_job_are_dropped(live: Live) -> None:
    series = f'llmasos_llmjob_deferred_timestamp_seconds{{namespace="{live.plan_ns}", llmjob="wait-em"}}'
    assert len(instant(live, series)) == 3  # planned_start, latest_start and deadline while it is deferred
    live.api.request("DELETE", llmjob_path(live.plan_ns, "wait-em"), expect=200)
    wait_for(lambda: live.api.request("GET", llmjob_path(live.plan_ns, "wait-em")).status_code == 404, 30,
             what="wait-em deleted")
    time.sleep(7)  # more than a resync and a scrape
    assert 'llmjob="wait-em"' not in live.operator.metrics()
