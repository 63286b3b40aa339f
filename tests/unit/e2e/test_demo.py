"""`make demo`'s pure parts: which example runs where, the real-node variants, the kwok agents' pods, reading the
workers' logs. The demo itself runs on a cluster (python -m e2e.demo); these catch a broken manifest or builder
without one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import demo
from e2e.demo_real import loss_line, worker_events
from e2e.kwokagents import build_kwok_agent_pod
from e2e.realchart import CHECKPOINTS
from llmasos.api.validate import manifest_problems

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def jobs_in(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d and d["kind"] == "LLMJob"]


def test_every_example_runs_once_in_the_demo_and_only_ddp_and_interruptible_move_to_the_real_node() -> None:
    top = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert set(demo.KWOK_EXAMPLES) <= top
    assert top - set(demo.KWOK_EXAMPLES) == {"01-ddp-immediate.yaml", "04-interruptible.yaml"}
    assert all((EXAMPLES / name).exists() for name in demo.REAL_EXAMPLES)


@pytest.mark.parametrize("name", demo.REAL_EXAMPLES)
def test_real_node_variants_are_valid_llmjobs_for_the_real_pool(name: str) -> None:
    [job] = jobs_in(name)
    assert manifest_problems(job) == []
    assert job["spec"]["placement"]["nodePools"] == ["real"]
    assert "sim.llmasos.io/duration" not in job["metadata"].get("annotations", {}), "nothing simulated there"
    assert demo.where(job) == demo.REAL


def test_the_interruptible_variant_checkpoints_on_the_demo_claim_at_the_operator_directory() -> None:
    [job] = jobs_in("real-node/04-interruptible.yaml")
    spec = job["spec"]
    assert job["metadata"]["name"] == demo.INTERRUPTIBLE
    assert spec["carbon"]["interruptible"] is True
    [volume] = spec["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == demo.CHECKPOINT_CLAIM
    assert spec["volumeMounts"] == [{"name": volume["name"], "mountPath": CHECKPOINTS}]
    # The demo suspends it once rank 0 passed --suspend-at: it must train longer than that.
    assert spec["taskConfig"]["steps"] > 2 * 300


def test_the_demo_applies_llmjobs_only() -> None:
    docs = demo.example_docs(demo.REAL_EXAMPLES + demo.KWOK_EXAMPLES)
    assert {d["kind"] for d in docs} == {"LLMJob"}
    assert len(docs) == 8


def test_kwok_examples_stay_on_kwok_pools() -> None:
    for name in demo.KWOK_EXAMPLES:
        for job in jobs_in(name):
            assert demo.where(job) == demo.KWOK
            assert "sim.llmasos.io/duration" in job["metadata"]["annotations"]


def test_the_table_says_where_each_job_runs() -> None:
    jobs = [*jobs_in("real-node/01-ddp.yaml"), *jobs_in("02-deadline-deferred.yaml")]
    jobs[0]["status"] = {"phase": "Running", "pool": "real", "workers": {"summary": "2/2 running"}}
    lines = demo.show_table(jobs).splitlines()
    assert lines[0].split()[:3] == ["NAME", "WHERE", "PHASE"]
    assert "gpt-tiny-deadline" in lines[1]
    assert "kwok" in lines[1]
    assert "gpt-tiny-ddp" in lines[2]
    assert "real node" in lines[2]
    assert "2/2 running" in lines[2]


def test_chart_extra_pins_the_trace_clock_with_a_perfect_forecast() -> None:
    offset, info = demo.demo_trace_offset(now=datetime(2026, 12, 4, 12, tzinfo=UTC))
    extra = demo.chart_extra(offset)
    assert extra["carbon"]["trace"] == {"offset": offset, "forecastError": 0}
    assert info["drop_at"] - info["trace_now"] == demo.LEAD
    assert "electricitymaps" not in extra["carbon"]["sources"]


def test_kwok_agent_pod_runs_on_the_real_node_for_its_kwok_node_as_the_chart_agent() -> None:
    pod = build_kwok_agent_pod("kwok-l4-0", "nvidia-l4", 4, image="localhost/llmasos/operator:k", namespace="sys",
                               service_account="llmasos-agent", real_node="llmasos-real-0")
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "llmasos-real-0"}
    assert spec["serviceAccountName"] == "llmasos-agent"
    assert spec["automountServiceAccountToken"] is True, "the chart's ServiceAccounts mount no token themselves"
    assert "hostNetwork" not in spec
    assert all("hostPath" not in v for v in spec["volumes"])
    [container] = spec["containers"]
    assert container["imagePullPolicy"] == "Never"
    args = container["args"]
    assert args[0] == "node-agent"
    assert {"--node-name=kwok-l4-0", "--gpu-backend=sim", "--sim-product=nvidia-l4", "--sim-gpus=4",
            "--gpu-mapping=fallback"} <= set(args)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_worker_events_and_the_loss_line() -> None:
    log = "\n".join([
        "W1204 some torch warning",
        json.dumps({"event": "start", "resumed_from": 0}),
        json.dumps({"event": "step", "step": 10, "loss": 5.5}),
        "{not json",
        json.dumps({"event": "step", "step": 200, "loss": 2.25}),
    ])
    events = worker_events(log)
    assert [e["event"] for e in events] == ["start", "step", "step"]
    assert loss_line(events) == "loss 5.50 at step 10 -> 2.25 at step 200"
    assert loss_line(events[:2]) == ""
