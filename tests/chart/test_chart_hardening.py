"""Issue 21, points 1, 3 and 7 as rendered: the agent in a namespace of its own, NetworkPolicies as narrow as the API
server and the carbon API need (metrics only from the monitoring namespace), and an agent the kubelet evicts last.
"""

from __future__ import annotations

from typing import Any

from tests.chart.conftest import CHART, Render, by_kind, containers, env_of, one

API = ["networkPolicy.apiServerCidrs={10.96.0.1/32}"]


def egress_cidrs(policy: dict[str, Any]) -> list[tuple[str, set[int]]]:
    out = []
    for rule in policy["spec"]["egress"]:
        ports = {p["port"] for p in rule.get("ports", [])}
        for peer in rule.get("to", []):
            if "ipBlock" in peer:
                out.append((peer["ipBlock"]["cidr"], ports))
    return out


def test_agent_in_its_own_namespace(render: Render) -> None:
    objects = render(set_values=["agent.namespace=llmasos-agent"])
    for kind, suffix in (("DaemonSet", "-agent"), ("ServiceAccount", "-agent"), ("Role", "-agent"),
                         ("RoleBinding", "-agent"), ("NetworkPolicy", "-agent")):
        assert one(objects, kind, suffix)["metadata"]["namespace"] == "llmasos-agent", kind
    assert one(objects, "ClusterRoleBinding", "-agent")["subjects"][0]["namespace"] == "llmasos-agent"
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert one(objects, kind)["metadata"]["namespace"] == "llmasos-system", kind
    (op,) = containers(one(objects, "Deployment"))
    assert env_of(op)["LLMASOS_REPORT_NAMESPACE"] == "llmasos-agent"
    (agent,) = containers(one(objects, "DaemonSet"))
    assert env_of(agent)["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_egress_reaches_only_the_api_server_and_the_carbon_api(render: Render) -> None:
    objects = render(set_values=API)
    agent, operator = one(objects, "NetworkPolicy", "-agent"), one(objects, "NetworkPolicy", "-operator")
    assert egress_cidrs(agent) == [("10.96.0.1/32", {443, 6443})], "the agent (SYS_ADMIN) reaches no internet"
    assert egress_cidrs(operator) == [("10.96.0.1/32", {443, 6443})], "no token: no carbon API egress"
    with_token = render([CHART / "ci" / "electricitymaps-values.yaml"],
                        set_values=[*API, "networkPolicy.carbonApiCidrs={192.0.2.0/24}"])
    assert egress_cidrs(one(with_token, "NetworkPolicy", "-operator")) == [
        ("10.96.0.1/32", {443, 6443}), ("192.0.2.0/24", {443})]
    assert egress_cidrs(one(with_token, "NetworkPolicy", "-agent")) == [("10.96.0.1/32", {443, 6443})]


def test_offline_render_without_api_server_cidrs_falls_back_to_the_api_ports_only(render: Render) -> None:
    agent = one(render(), "NetworkPolicy", "-agent")
    assert egress_cidrs(agent) == [("0.0.0.0/0", {443, 6443})]


def test_metrics_are_scraped_only_from_the_monitoring_namespace(render: Render) -> None:
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    for policy in by_kind(render(set_values=API), "NetworkPolicy"):
        metrics = [r for r in policy["spec"]["ingress"] if {"port": "metrics", "protocol": "TCP"} in r["ports"]]
        assert len(metrics) == 1
        assert metrics[0]["from"] == monitoring, policy["metadata"]["name"]
        probes = [r for r in policy["spec"]["ingress"] if r not in metrics]
        assert all("from" not in r for r in probes), "the kubelet's probes come from the node"
        assert {p["port"] for r in probes for p in r["ports"]} <= {"health", "live"}


def test_agent_is_node_critical_and_within_its_memory_request(render: Render) -> None:
    ds = one(render(), "DaemonSet")
    assert ds["spec"]["template"]["spec"]["priorityClassName"] == "system-node-critical"
    (agent,) = containers(ds)
    resources = agent["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    assert resources["requests"]["cpu"]
    assert "cpu" not in resources["limits"], "no CPU limit on purpose (docs/operations.md, Static checks)"
