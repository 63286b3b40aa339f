"""Every LLMJob in examples/ is a job the worker accepts: its env (as the operator renders it) passes the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmasos.api.spec import parse_spec
from llmasos.api.worker_contract import WorkerEnv
from llmasos_worker import config as worker_config
from llmasos_worker.config import TaskConfig, check_layout

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def _jobs() -> list[Any]:
    jobs = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "LLMJob":
                jobs.append(pytest.param(doc, id=f"{path.stem}/{doc['metadata']['name']}"))
    return jobs


@pytest.mark.parametrize("doc", _jobs())
def test_example_is_a_valid_worker_job(doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_config, "check_model_path", lambda path: None)  # volumes exist only in a cluster
    spec = parse_spec(doc["spec"])
    p = spec.parallelism
    env = WorkerEnv(job_name=doc["metadata"]["name"], namespace="ml", task=spec.task, strategy=p.strategy,
                    nnodes=p.nodes, nproc_per_node=p.procs_per_node, master_addr="head", data_parallel=p.data_parallel,
                    tensor_parallel=p.tensor_parallel, pipeline_parallel=p.pipeline_parallel,
                    model_builtin=spec.model.builtin, model_path=spec.model.path, model_hf_repo=spec.model.hf_repo,
                    task_config=spec.task_config)
    parsed = WorkerEnv.from_env(env.to_env())
    check_layout(parsed, TaskConfig.from_mapping(parsed.task_config))
