"""Small builders for unit tests: `make_spec(nodes=2, gpus=4, strategy="ddp")`, observed Jobs, nodes."""

from __future__ import annotations

from typing import Any

from llmasos.api.spec import LLMJobSpec, parse_spec
from llmasos.planning.lifecycle.decision import ObservedJob
from llmasos.planning.placement.feasible import NodeCapacity


def make_raw(nodes: int = 2, gpus: int = 4, strategy: str = "ddp", **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"model": {"builtin": "gpt-tiny"},
                           "parallelism": {"strategy": strategy, "nodes": nodes, "gpusPerNode": gpus}}
    for key, value in extra.items():
        if key in ("tensorParallel", "pipelineParallel", "dataParallel"):
            raw["parallelism"][key] = value
        else:
            raw[key] = value
    return raw


def make_spec(nodes: int = 2, gpus: int = 4, strategy: str = "ddp", **extra: Any) -> LLMJobSpec:
    return parse_spec(make_raw(nodes, gpus, strategy, **extra))


def make_job(attempt: int = 0, **kw: Any) -> ObservedJob:
    return ObservedJob(name=f"j-a{attempt}", attempt=attempt, **kw)


def make_nodes(pool: str, count: int, gpus: int, product: str = "nvidia-a100-80gb", used: int = 0,
               zone: str = "DE") -> list[NodeCapacity]:
    return [NodeCapacity(f"{pool}-{i}", pool, product, zone, gpus, used) for i in range(count)]
