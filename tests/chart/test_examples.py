"""The numbered examples: each parses with the operator's own spec parser and each taskConfig with the worker's.

(tests/integration/chart/test_chart_release.py also sends every example through the API server's schema and CEL rules
with a server-side dry run.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmasos.api.spec import parse_spec
from llmasos_worker.config import TaskConfig
from tests.chart.conftest import REPO

EXAMPLES = sorted((REPO / "examples").glob("[0-9][0-9]-*.yaml"))


def llmjobs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "LLMJob"]


def test_the_demo_story_is_complete() -> None:
    names = [p.name for p in EXAMPLES]
    assert names[0] == "01-ddp-immediate.yaml"
    assert len(names) >= 7
    jobs = [j for p in EXAMPLES for j in llmjobs(p)]
    specs = [j["spec"] for j in jobs]
    assert any(s.get("carbon", {}).get("policy") == "deadline" and not s["carbon"].get("interruptible") for s in specs)
    assert any(s.get("carbon", {}).get("interruptible") for s in specs)
    assert any(s.get("power", {}).get("policy", "none") != "none" for s in specs)
    strategies = {s["parallelism"]["strategy"] for s in specs}
    assert {"ddp", "tensor", "pipeline", "ray"} <= strategies
    tasks = {s.get("task", "train") for s in specs}
    assert {"train", "inference", "compress"} <= tasks
    names_seen = [(j["metadata"]["namespace"], j["metadata"]["name"]) for j in jobs]
    assert len(set(names_seen)) == len(names_seen), "every example LLMJob has its own name"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_parses_like_the_operator_does(path: Path) -> None:
    jobs = llmjobs(path)
    assert jobs, f"{path.name} holds no LLMJob"
    for job in jobs:
        assert len(job["metadata"]["name"]) <= 40
        parse_spec(dict(job["spec"]))


# Examples whose taskConfig the worker is known to reject (none: keep it empty).
KNOWN_BAD: set[str] = set()


@pytest.mark.parametrize("path", [
    pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="camelCase taskConfig keys")) if p.name in KNOWN_BAD
    else p for p in EXAMPLES], ids=[p.name for p in EXAMPLES])
def test_example_task_config_is_accepted_by_the_worker(path: Path) -> None:
    for job in llmjobs(path):
        TaskConfig.from_mapping(job["spec"].get("taskConfig") or {})
