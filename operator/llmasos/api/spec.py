"""LLMJob spec as frozen dataclasses, parsed from the object the API server returns.

The API server has already applied the schema's defaults and CEL rules; parsing applies the same defaults again
(so manifests can be planned offline by `llmasos plan`) and re-checks enums, the rules a policy imposes and what
CEL cannot see (e.g. durations that parse). Every default, enum and policy rule is read from `api.schema`, never
written here. Anything invalid raises :class:`llmasos.errors.SpecError` naming the field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from llmasos.api.clock import parse_instant
from llmasos.api.durations import parse_duration
from llmasos.api.power import PowerSpec
from llmasos.api.schema import (
    CARBON_NEEDS,
    DEADLINE_OR_MAX_DELAY,
    check_choice,
    spec_default,
    spec_field,
    unmet_need,
)
from llmasos.api.task_config import TASK_CONFIG_KEYS, ConfigError, TaskConfig, check_env_layout
from llmasos.api.validate import validate_manifest
from llmasos.api.worker_contract import CHECKPOINTING_TASKS, WorkerEnv
from llmasos.errors import SpecError


def _default_duration(path: str) -> timedelta:
    return parse_duration(str(spec_default(path)))


_POLICY: str = spec_default("carbon.policy")
_SAFETY_MARGIN = _default_duration("carbon.safetyMargin")
_MIN_SEGMENT = _default_duration("carbon.minSegment")


# The run time assumed for a job that gives neither spec.carbon.expectedDuration nor spec.maxRuntime (and for a Kueue
# workload without llmasos.io/expected-duration).
DEFAULT_EXPECTED_DURATION = timedelta(hours=1)

@dataclass(frozen=True)
class ModelSpec:
    builtin: str = ""
    path: str = ""
    volume: str = ""
    hf_repo: str = ""


@dataclass(frozen=True)
class ParallelismSpec:
    strategy: str = spec_default("parallelism.strategy")
    nodes: int = spec_default("parallelism.nodes")
    gpus_per_node: int = spec_default("parallelism.gpusPerNode")
    data_parallel: int = 1  # derived: world size / (tensorParallel x pipelineParallel)
    tensor_parallel: int = spec_default("parallelism.tensorParallel")
    pipeline_parallel: int = spec_default("parallelism.pipelineParallel")

    @property
    def procs_per_node(self) -> int:
        return max(self.gpus_per_node, 1)

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


@dataclass(frozen=True)
class CarbonSpec:
    """`spec.carbon`; constructing one (the parser, or `dataclasses.replace`) checks the schema's rules."""

    policy: str = _POLICY
    deadline: datetime | None = None
    max_delay: timedelta | None = None
    expected_duration: timedelta | None = None
    interruptible: bool = spec_default("carbon.interruptible")
    max_intensity: float | None = None
    zone: str = ""
    safety_margin: timedelta = _SAFETY_MARGIN
    # Interruptible jobs: the shortest run between two suspensions, and how many runs at most (None: no limit).
    min_segment: timedelta = _MIN_SEGMENT
    max_segments: int | None = None

    def __post_init__(self) -> None:
        check_choice("carbon.policy", self.policy)
        lowest = spec_field("carbon.maxSegments")["minimum"]
        if self.max_segments is not None and self.max_segments < lowest:
            raise SpecError(f"carbon.maxSegments must be at least {lowest}", "spec.carbon.maxSegments")
        if self.deadline is not None and self.max_delay is not None:
            raise SpecError(DEADLINE_OR_MAX_DELAY, "spec.carbon.maxDelay")
        present = {name for name, value in (("deadline", self.deadline), ("maxDelay", self.max_delay),
                                            ("expectedDuration", self.expected_duration),
                                            ("maxIntensity", self.max_intensity)) if value is not None}
        need = unmet_need(CARBON_NEEDS, self.policy, present)
        if need is not None:
            raise SpecError(need.message(self.policy), need.field_path)

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
    cpu: str = spec_default("resources.cpu")
    memory: str = spec_default("resources.memory")
    node_pools: tuple[str, ...] = ()
    prefer_efficient: bool = spec_default("placement.preferEfficient")
    carbon: CarbonSpec = field(default_factory=CarbonSpec)
    power: PowerSpec = field(default_factory=PowerSpec)
    pue: float | None = None
    team: str = ""
    max_runtime: timedelta | None = None
    backoff_limit: int = spec_default("backoffLimit")
    suspend: bool = spec_default("suspend")
    ttl_seconds_after_finished: int | None = None
    queue_name: str = ""  # a Kueue LocalQueue: Kueue admits the child Job (docs/kueue.md)

    @property
    def planned_duration(self) -> timedelta:
        """The run time the planner and the accounting assume: spec.carbon.expectedDuration, else spec.maxRuntime,
        else `DEFAULT_EXPECTED_DURATION` (the one place this rule is written)."""
        return self.carbon.expected_duration or self.max_runtime or DEFAULT_EXPECTED_DURATION


class _Fields:
    """One object of the manifest (`spec`, `spec.carbon`, ...), read with the schema's default for a field that is
    absent or null."""

    def __init__(self, raw: object, path: str = "") -> None:
        self.raw: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> Any:
        value = self.raw.get(key)
        return spec_default(self.name(key)) if value is None else value

    def choice(self, key: str) -> str:
        return check_choice(self.name(key), self.get(key))

    def optional(self, key: str) -> Any:
        """The value, or None when absent, null or empty (and the schema has no default)."""
        value = self.get(key)
        return None if value in (None, "") else value

    def duration(self, key: str) -> timedelta | None:
        value = self.raw.get(key)
        if value in (None, ""):
            value = spec_default(self.name(key))
        if value is None:
            return None
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise SpecError(str(exc), f"spec.{self.name(key)}") from None


def parse_time(value: str, path: str) -> datetime:
    """An instant of the spec (UTC), parsed by `api.clock.parse_instant`; what it refuses is a SpecError at `path`."""
    try:
        return parse_instant(value, path)
    except ValueError as exc:
        raise SpecError(str(exc), path) from None


def _parallelism(raw: object) -> ParallelismSpec:
    f = _Fields(raw, "parallelism")
    p = ParallelismSpec(
        strategy=f.choice("strategy"),
        nodes=int(f.get("nodes")),
        gpus_per_node=int(f.get("gpusPerNode")),
        tensor_parallel=int(f.get("tensorParallel")),
        pipeline_parallel=int(f.get("pipelineParallel")),
    )
    model_degrees = p.tensor_parallel * p.pipeline_parallel
    if p.strategy != "ray" and p.world_size % model_degrees:
        raise SpecError("nodes x gpusPerNode must be divisible by tensorParallel x pipelineParallel",
                        "spec.parallelism.tensorParallel")
    dp = f.optional("dataParallel")
    dp = int(dp) if dp is not None else (p.world_size // model_degrees if p.strategy != "ray" else p.world_size)
    if p.strategy != "ray" and dp * model_degrees != p.world_size:
        raise SpecError("dataParallel x tensorParallel x pipelineParallel must equal nodes x gpusPerNode",
                        "spec.parallelism.dataParallel")
    return ParallelismSpec(p.strategy, p.nodes, p.gpus_per_node, dp, p.tensor_parallel, p.pipeline_parallel)


def _carbon(raw: object) -> CarbonSpec:
    f = _Fields(raw, "carbon")
    deadline = f.optional("deadline")
    max_intensity, max_segments = f.optional("maxIntensity"), f.optional("maxSegments")
    return CarbonSpec(
        policy=f.choice("policy"),
        deadline=parse_time(str(deadline), "spec.carbon.deadline") if deadline is not None else None,
        max_delay=f.duration("maxDelay"),
        expected_duration=f.duration("expectedDuration"),
        interruptible=bool(f.get("interruptible")),
        max_intensity=float(max_intensity) if max_intensity is not None else None,
        zone=str(f.optional("zone") or ""),
        safety_margin=cast(timedelta, f.duration("safetyMargin")),
        min_segment=cast(timedelta, f.duration("minSegment")),
        max_segments=int(max_segments) if max_segments is not None else None,
    )


def _task_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    """spec.taskConfig; with the built-in worker (no spec.command) only the keys it takes, a typo named."""
    config = dict(spec.get("taskConfig") or {})
    if spec.get("command"):  # another program: its own keys
        return config
    for key in sorted(set(config) - set(TASK_CONFIG_KEYS)):
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        snake = {"learning_rate": "lr"}.get(snake, snake)
        close = [snake] if snake in TASK_CONFIG_KEYS else difflib.get_close_matches(key, TASK_CONFIG_KEYS, n=1)
        hint = f"did you mean {close[0]}?" if close else "the keys are listed in docs/worker.md"
        raise SpecError(f"the built-in worker takes no taskConfig key {key!r}; {hint} (with spec.command, any "
                        "keys)", f"spec.taskConfig.{key}")
    return config


def parse_spec(spec: dict[str, Any]) -> LLMJobSpec:
    """Parse `.spec` of an LLMJob; raise SpecError naming the field for what the schema could not catch."""
    top = _Fields(spec)
    model = _Fields(spec.get("model"), "model")
    if not any(model.raw.get(k) for k in ("builtin", "path", "hfRepo")):
        raise SpecError("set exactly one of builtin, path or hfRepo", "spec.model")
    builtin = model.choice("builtin") if model.raw.get("builtin") else ""
    resources = _Fields(spec.get("resources"), "resources")
    placement = _Fields(spec.get("placement"), "placement")
    accounting = _Fields(spec.get("accounting"), "accounting")
    pue, ttl = accounting.optional("pue"), top.optional("ttlSecondsAfterFinished")
    return LLMJobSpec(
        task=top.choice("task"),
        model=ModelSpec(builtin=builtin, path=str(model.raw.get("path") or ""),
                        volume=str(model.raw.get("volume") or ""), hf_repo=str(model.raw.get("hfRepo") or "")),
        parallelism=_parallelism(spec.get("parallelism")),
        image=str(spec.get("image") or ""),
        command=tuple(str(x) for x in spec.get("command") or ()),
        args=tuple(str(x) for x in spec.get("args") or ()),
        env=tuple(spec.get("env") or ()),
        volumes=tuple(spec.get("volumes") or ()),
        volume_mounts=tuple(spec.get("volumeMounts") or ()),
        task_config=_task_config(spec),
        cpu=str(resources.get("cpu")),
        memory=str(resources.get("memory")),
        node_pools=tuple(str(p) for p in placement.raw.get("nodePools") or ()),
        prefer_efficient=bool(placement.get("preferEfficient")),
        carbon=_carbon(spec.get("carbon")),
        power=PowerSpec.from_mapping(spec.get("power") or {}),
        pue=float(pue) if pue is not None else None,
        team=str(accounting.optional("team") or ""),
        max_runtime=top.duration("maxRuntime"),
        backoff_limit=int(top.get("backoffLimit")),
        suspend=bool(top.get("suspend")),
        ttl_seconds_after_finished=int(ttl) if ttl is not None else None,
        queue_name=str(spec.get("queueName") or ""),
    )


def check_deadline(carbon: CarbonSpec, created: datetime) -> None:
    """SpecError when spec.carbon.deadline is before the LLMJob was created: no plan can meet it, ever (a deadline
    that passes later, while the job waits or runs, is the planner's business, not an invalid spec)."""
    if carbon.deadline is not None and carbon.deadline <= created:
        raise SpecError(f"carbon.deadline {carbon.deadline.isoformat().replace('+00:00', 'Z')} is not after the "
                        f"LLMJob's creation ({created.isoformat().replace('+00:00', 'Z')}): a deadline in the past "
                        "can never be met; set a later deadline, or maxDelay", "spec.carbon.deadline")


# The worker's names for what the LLMJob spells otherwise, so its refusal reads in the LLMJob's words.
_SPEC_WORDS = (("LLMASOS_TASK_CONFIG.", "taskConfig."), ("LLMASOS_STRATEGY", "parallelism.strategy"),
               ("LLMASOS_DATA_PARALLEL", "parallelism.dataParallel"),
               ("LLMASOS_TENSOR_PARALLEL", "parallelism.tensorParallel"),
               ("LLMASOS_PIPELINE_PARALLEL", "parallelism.pipelineParallel"),
               ("LLMASOS_MODEL_HF_REPO", "model.hfRepo"), ("LLMASOS_MODEL_PATH", "model.path"),
               ("LLMASOS_MODEL_BUILTIN", "model.builtin"),
               ("NNODES=1 and NPROC_PER_NODE=1", "parallelism.nodes 1 and gpusPerNode at most 1"))


def check_builtin_worker(spec: LLMJobSpec) -> None:
    """SpecError when the built-in worker (no spec.command) would refuse the job at start-up: taskConfig's values
    (types, ranges) and what the job's shape alone decides (the batch against the data-parallel degree, the built-in
    model against the model-parallel degrees, a task the strategy does not run), and an interruptible job whose task
    cannot checkpoint. The worker's own check, run before any pod exists; what needs the pod's file system (a model
    path it can read) is left to the worker. The API server cannot judge these, so they are not in `parse_spec`
    (which accepts what the API server accepts)."""
    if spec.command:
        return
    if spec.carbon.interruptible and spec.task not in CHECKPOINTING_TASKS:
        tasks = " or ".join(CHECKPOINTING_TASKS)
        raise SpecError(f"carbon.interruptible needs a task that checkpoints on SIGTERM ({tasks}): the built-in "
                        f"worker's {spec.task} stops at once and starts over when resumed, so every carbon segment "
                        "would repeat the work (a job with spec.command runs its own program, which the operator "
                        "does not check)", "spec.carbon.interruptible")
    p = spec.parallelism
    env = WorkerEnv(job_name="", namespace="", task=spec.task, strategy=p.strategy, nnodes=p.nodes,
                    nproc_per_node=p.procs_per_node, master_addr="", data_parallel=p.data_parallel,
                    tensor_parallel=p.tensor_parallel, pipeline_parallel=p.pipeline_parallel,
                    model_builtin=spec.model.builtin, model_path=spec.model.path, model_hf_repo=spec.model.hf_repo)
    try:
        check_env_layout(env, TaskConfig.from_mapping(spec.task_config))
    except ConfigError as exc:
        message = str(exc)
        for worker_word, spec_word in _SPEC_WORDS:
            message = message.replace(worker_word, spec_word)
        raise SpecError(f"the built-in worker would refuse this job: {message} (a job with spec.command runs "
                        "its own program, which the operator does not check)", "spec.taskConfig") from None


def parse_manifest(manifest: Mapping[str, Any], now: datetime) -> LLMJobSpec:
    """A whole LLMJob manifest as `llmasos plan -f` reads it: refused as the API server refuses it (unknown fields,
    enums, CEL rules: `api.validate`), parsed, and refused as the operator refuses it: a deadline before its creation
    (its metadata.creationTimestamp, else `now`), a job the built-in worker would refuse."""
    validate_manifest(manifest)
    spec = parse_spec(dict(manifest["spec"]))
    stamp = (manifest.get("metadata") or {}).get("creationTimestamp")
    check_deadline(spec.carbon, parse_time(str(stamp), "metadata.creationTimestamp") if stamp else now)
    check_builtin_worker(spec)
    return spec
