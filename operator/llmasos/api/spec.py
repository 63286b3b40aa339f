"""LLMJob spec as frozen dataclasses, parsed from the object the API server returns.

The API server has already applied the schema's defaults and CEL rules; parsing applies the same defaults again
(so manifests can be planned offline by `llmasos plan`) and re-checks what CEL cannot see (e.g. durations that
parse). Anything invalid raises :class:`llmasos.errors.SpecError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from llmasos.api.durations import parse_duration
from llmasos.api.power import PowerSpec
from llmasos.errors import SpecError


@dataclass(frozen=True)
class ModelSpec:
    builtin: str = ""
    path: str = ""
    volume: str = ""
    hf_repo: str = ""


@dataclass(frozen=True)
class ParallelismSpec:
    strategy: str = "ddp"
    nodes: int = 1
    gpus_per_node: int = 1
    data_parallel: int = 1
    tensor_parallel: int = 1
    pipeline_parallel: int = 1

    @property
    def procs_per_node(self) -> int:
        return max(self.gpus_per_node, 1)

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


@dataclass(frozen=True)
class CarbonSpec:
    policy: str = "immediate"
    deadline: datetime | None = None
    max_delay: timedelta | None = None
    expected_duration: timedelta | None = None
    interruptible: bool = False
    max_intensity: float | None = None
    zone: str = ""
    safety_margin: timedelta = timedelta(minutes=15)
    # Interruptible jobs: the shortest run between two suspensions, and how many runs at most (None: no limit).
    min_segment: timedelta = timedelta(minutes=15)
    max_segments: int | None = None

    def deadline_for(self, created: datetime) -> datetime | None:
        if self.deadline is not None:
            return self.deadline
        return created + self.max_delay if self.max_delay is not None else None


@dataclass(frozen=True)
class LLMJobSpec:
    task: str
    model: ModelSpec
    parallelism: ParallelismSpec
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    task_config: dict[str, Any] = field(default_factory=dict)
    cpu: str = "2"
    memory: str = "8Gi"
    node_pools: tuple[str, ...] = ()
    prefer_efficient: bool = True
    carbon: CarbonSpec = field(default_factory=CarbonSpec)
    power: PowerSpec = field(default_factory=PowerSpec)
    pue: float | None = None
    team: str = ""
    max_runtime: timedelta | None = None
    backoff_limit: int = 2
    suspend: bool = False
    ttl_seconds_after_finished: int | None = None


def _duration(raw: dict[str, Any], key: str, path: str) -> timedelta | None:
    if raw.get(key) in (None, ""):
        return None
    try:
        return parse_duration(str(raw[key]))
    except ValueError as exc:
        raise SpecError(str(exc), f"{path}.{key}") from None


def _default(value: timedelta | None, default: timedelta) -> timedelta:
    return default if value is None else value


def parse_time(value: str, path: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(f"{path}: {value!r} is not an RFC 3339 time", path) from None
    if parsed.tzinfo is None:
        raise SpecError(f"{path}: {value!r} needs a time zone (e.g. a trailing Z)", path)
    return parsed


def _parallelism(raw: dict[str, Any]) -> ParallelismSpec:
    p = ParallelismSpec(
        strategy=str(raw.get("strategy", "ddp")),
        nodes=int(raw.get("nodes", 1)),
        gpus_per_node=int(raw.get("gpusPerNode", 1)),
        tensor_parallel=int(raw.get("tensorParallel", 1)),
        pipeline_parallel=int(raw.get("pipelineParallel", 1)),
    )
    model_degrees = p.tensor_parallel * p.pipeline_parallel
    if p.strategy != "ray" and p.world_size % model_degrees:
        raise SpecError("nodes x gpusPerNode must be divisible by tensorParallel x pipelineParallel",
                        "spec.parallelism.tensorParallel")
    dp = int(raw.get("dataParallel", p.world_size // model_degrees if p.strategy != "ray" else p.world_size))
    if p.strategy != "ray" and dp * model_degrees != p.world_size:
        raise SpecError("dataParallel x tensorParallel x pipelineParallel must equal nodes x gpusPerNode",
                        "spec.parallelism.dataParallel")
    return ParallelismSpec(p.strategy, p.nodes, p.gpus_per_node, dp, p.tensor_parallel, p.pipeline_parallel)


def parse_spec(spec: dict[str, Any]) -> LLMJobSpec:
    """Parse `.spec` of an LLMJob; raise SpecError naming the field for what the schema could not catch."""
    model = spec.get("model") or {}
    if not any(model.get(k) for k in ("builtin", "path", "hfRepo")):
        raise SpecError("set exactly one of builtin, path or hfRepo", "spec.model")
    carbon_raw = spec.get("carbon") or {}
    power_raw = spec.get("power") or {}
    placement = spec.get("placement") or {}
    resources = spec.get("resources") or {}
    accounting = spec.get("accounting") or {}
    deadline = carbon_raw.get("deadline")
    carbon = CarbonSpec(
        policy=str(carbon_raw.get("policy", "immediate")),
        deadline=parse_time(str(deadline), "spec.carbon.deadline") if deadline else None,
        max_delay=_duration(carbon_raw, "maxDelay", "spec.carbon"),
        expected_duration=_duration(carbon_raw, "expectedDuration", "spec.carbon"),
        interruptible=bool(carbon_raw.get("interruptible", False)),
        max_intensity=float(carbon_raw["maxIntensity"]) if carbon_raw.get("maxIntensity") is not None else None,
        zone=str(carbon_raw.get("zone", "")),
        safety_margin=_duration(carbon_raw, "safetyMargin", "spec.carbon") or timedelta(minutes=15),
        min_segment=_default(_duration(carbon_raw, "minSegment", "spec.carbon"), timedelta(minutes=15)),
        max_segments=int(carbon_raw["maxSegments"]) if carbon_raw.get("maxSegments") is not None else None,
    )
    if carbon.max_segments is not None and carbon.max_segments < 1:
        raise SpecError("carbon.maxSegments must be at least 1", "spec.carbon.maxSegments")
    if carbon.deadline is not None and carbon.max_delay is not None:
        raise SpecError("deadline and maxDelay are mutually exclusive", "spec.carbon.maxDelay")
    power = PowerSpec.from_mapping(power_raw)
    return LLMJobSpec(
        task=str(spec.get("task", "train")),
        model=ModelSpec(builtin=str(model.get("builtin", "")), path=str(model.get("path", "")),
                        volume=str(model.get("volume", "")), hf_repo=str(model.get("hfRepo", ""))),
        parallelism=_parallelism(spec.get("parallelism") or {}),
        image=str(spec.get("image", "")),
        command=tuple(str(x) for x in spec.get("command") or ()),
        args=tuple(str(x) for x in spec.get("args") or ()),
        env=tuple(spec.get("env") or ()),
        volumes=tuple(spec.get("volumes") or ()),
        volume_mounts=tuple(spec.get("volumeMounts") or ()),
        task_config=dict(spec.get("taskConfig") or {}),
        cpu=str(resources.get("cpu", "2")),
        memory=str(resources.get("memory", "8Gi")),
        node_pools=tuple(str(p) for p in placement.get("nodePools") or ()),
        prefer_efficient=bool(placement.get("preferEfficient", True)),
        carbon=carbon,
        power=power,
        pue=float(accounting["pue"]) if accounting.get("pue") is not None else None,
        team=str(accounting.get("team", "")),
        max_runtime=_duration(spec, "maxRuntime", "spec"),
        backoff_limit=int(spec.get("backoffLimit", 2)),
        suspend=bool(spec.get("suspend", False)),
        ttl_seconds_after_finished=(int(spec["ttlSecondsAfterFinished"])
                                    if spec.get("ttlSecondsAfterFinished") is not None else None),
    )
