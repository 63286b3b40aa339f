"""The LLMJob schema: the single source of truth for the CRD, `kubectl explain`, defaults, enums and rules.

Cross-field rules are CEL (`x-kubernetes-validations`), so the API server rejects an impossible spec before the
operator ever sees it, with a message that names the field. The operator's parser (`api.spec`, `api.power`) reads
its defaults and enum values from here (`spec_default`, `check_choice`), and the rules a policy imposes
(`CARBON_NEEDS`, `POWER_NEEDS`) are written once, as data that renders both the CEL rule and the parser's check.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal, get_args

from llmasos.api.durations import DURATION_PATTERN
from llmasos.api.openapi import (
    Schema,
    array,
    boolean,
    defaults_of,
    embedded,
    field_at,
    integer,
    number,
    obj,
    quantity,
    rule,
    string,
)
from llmasos.api.phase import Phase
from llmasos.api.status_schema import carbon_status_schema, power_status_schema, progress_status_schema
from llmasos.api.worker_contract import STRATEGIES, TASKS
from llmasos.api.workload_policy import (
    ALLOW_HOST_VOLUMES_LABEL,
    ALLOWED_NODE_POOLS_ANNOTATION,
    ALLOWED_PROJECTED_SOURCES,
    ALLOWED_VOLUME_TYPES,
    MAX_VOLUMES,
)
from llmasos.errors import SpecError

BUILTIN_MODELS = ["gpt-tiny", "gpt-small"]
CarbonPolicy = Literal["immediate", "deadline", "threshold"]
CARBON_POLICIES: tuple[CarbonPolicy, ...] = get_args(CarbonPolicy)
POWER_POLICIES = ("none", "limit", "fraction", "energyOptimal")
PHASES = [str(phase) for phase in Phase]  # the one list: api/phase.py
MAX_NAME_LENGTH = 40
IMMUTABLE = "is immutable once the LLMJob exists; delete and recreate the LLMJob to change it"
DEADLINE_OR_MAX_DELAY = "deadline and maxDelay are mutually exclusive"


@dataclass(frozen=True)
class PolicyNeed:
    """Policies of `spec.<section>` that need a field (any one of `fields`), and the field an error names.

    One rule, three readers: the API server (as the CEL rule `rule()` renders), the parser (`api.spec`,
    `api.power`) and the planner's own job (`planning.timing.carbon_window.CarbonJob`).
    """

    section: str
    policies: tuple[str, ...]
    fields: tuple[str, ...]
    names: str

    @property
    def field_path(self) -> str:
        return f"spec.{self.section}.{self.names}"

    def unmet(self, policy: str, present: Collection[str]) -> bool:
        """True when `policy` needs this and none of `fields` is among the `present` ones."""
        return policy in self.policies and not any(f in present for f in self.fields)

    def message(self, policy: str) -> str:
        """The parser's message, naming the policy the user chose."""
        return f"{self.section}.policy {policy!r} needs {' or '.join(self.fields)}"

    def rule(self) -> Schema:
        """The CEL rule on the `spec.<section>` object."""
        has = " || ".join(f"has(self.{f})" for f in self.fields)
        if len(self.policies) == 1:
            when, who = f"self.policy != '{self.policies[0]}'", f"policy {self.policies[0]} needs"
        else:
            listed = ", ".join(f"'{p}'" for p in self.policies)
            when, who = f"!(self.policy in [{listed}])", f"policies {' and '.join(self.policies)} need"
        return rule(f"{when} || {has}", f"{who} {' or '.join(self.fields)}", field_path=f".{self.names}")


CARBON_NEEDS = (
    PolicyNeed("carbon", ("deadline", "threshold"), ("deadline", "maxDelay"), "policy"),
    PolicyNeed("carbon", ("deadline", "threshold"), ("expectedDuration",), "expectedDuration"),
    PolicyNeed("carbon", ("threshold",), ("maxIntensity",), "maxIntensity"),
)
POWER_NEEDS = (
    PolicyNeed("power", ("limit",), ("limitWatts",), "limitWatts"),
    PolicyNeed("power", ("fraction",), ("fraction",), "fraction"),
)


def unmet_need(needs: Collection[PolicyNeed], policy: str, present: Collection[str]) -> PolicyNeed | None:
    """The first of `needs` that `policy` has and `present` (the fields set) does not meet; None when all are met."""
    return next((need for need in needs if need.unmet(policy, present)), None)


def _duration(description: str, default: str | None = None) -> Schema:
    return string(description + ' Written as a number with a unit: "90s", "45m", "1h30m", "2d".',
                  pattern=DURATION_PATTERN, default=default, max_length=32)


def model_schema() -> Schema:
    return obj(
        "Which model to run. Set exactly one of builtin, path or hfRepo.",
        {
            "builtin": string("A decoder-only transformer shipped with the worker image.", enum=BUILTIN_MODELS),
            "path": string("Directory of a Hugging Face transformers model inside the container (no downloads "
                           "happen at run time).", max_length=1024),
            "volume": string("Name of an entry in spec.volumes to mount so that path exists. Requires path.",
                             max_length=253),
            "hfRepo": string("A Hugging Face repository id (org/name). It must already be present in the image's "
                             "local cache or on a mounted volume: workers never download weights.",
                             max_length=256, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"),
        },
        rules=[
            rule("[has(self.builtin), has(self.path), has(self.hfRepo)].filter(x, x).size() == 1",
                 "set exactly one of builtin, path or hfRepo"),
            rule("!has(self.volume) || has(self.path)", "volume requires path", field_path=".volume"),
        ],
    )


def parallelism_schema() -> Schema:
    world = "self.nodes * (self.gpusPerNode == 0 ? 1 : self.gpusPerNode)"
    fields = {
        "strategy": string("ddp: data parallel (torch DDP). tensor: tensor parallel (DTensor). pipeline: "
                           "pipeline parallel (torch.distributed.pipelining). hybrid: any mix of the three "
                           "degrees. ray: a Ray cluster (head + workers) with the driver on the head.",
                           enum=list(STRATEGIES), default="ddp"),
        "nodes": integer("Number of worker pods (for ray: Ray nodes, the head included).", default=1,
                         minimum=1, maximum=512),
        "gpusPerNode": integer("GPUs (nvidia.com/gpu) per pod; also the number of processes per pod. "
                               "0 runs one CPU process per pod.", default=1, minimum=0, maximum=16),
        "dataParallel": integer("Data-parallel degree. Defaults to world size / (tensorParallel x "
                                "pipelineParallel).", minimum=1, maximum=8192),
        "tensorParallel": integer("Tensor-parallel degree.", default=1, minimum=1, maximum=64),
        "pipelineParallel": integer("Pipeline-parallel degree (number of stages).", default=1, minimum=1,
                                    maximum=128),
    }
    return obj(
        "How the work is spread over pods and GPUs.",
        fields,
        default=defaults_of(fields),
        rules=[
            rule(f"!has(self.dataParallel) || self.strategy == 'ray' || self.dataParallel * self.tensorParallel "
                 f"* self.pipelineParallel == {world}",
                 "dataParallel x tensorParallel x pipelineParallel must equal nodes x gpusPerNode",
                 field_path=".dataParallel"),
            rule(f"self.strategy == 'ray' || ({world}) % (self.tensorParallel * self.pipelineParallel) == 0",
                 "nodes x gpusPerNode must be divisible by tensorParallel x pipelineParallel",
                 field_path=".tensorParallel"),
            rule("!(self.strategy in ['ddp', 'ray']) || (self.tensorParallel == 1 && self.pipelineParallel == 1)",
                 "strategy ddp and ray take no tensorParallel or pipelineParallel degree; use hybrid",
                 field_path=".strategy"),
            rule("self.strategy != 'tensor' || (self.tensorParallel > 1 && self.pipelineParallel == 1)",
                 "strategy tensor needs tensorParallel > 1 and pipelineParallel 1", field_path=".tensorParallel"),
            rule("self.strategy != 'pipeline' || (self.pipelineParallel > 1 && self.tensorParallel == 1)",
                 "strategy pipeline needs pipelineParallel > 1 and tensorParallel 1",
                 field_path=".pipelineParallel"),
        ],
    )


def carbon_schema() -> Schema:
    fields = {
        "policy": string("Timing policy.", enum=list(CARBON_POLICIES), default="immediate"),
        # The API server's schema check let a list (deadline: ['']) through for this date-time string; the CEL
        # rule (date-time strings are CEL timestamps) rejects it naming the field, at apply time.
        "deadline": string("Absolute time (RFC 3339, e.g. 2026-12-01T08:00:00Z) by which the job must have "
                           "finished.", fmt="date-time", max_length=64,
                           pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
                                   r"(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
                           rules=[rule("self > timestamp('2000-01-01T00:00:00Z')",
                                       "deadline must be an RFC 3339 time after 2000-01-01")]),
        "maxDelay": _duration("Deadline relative to the LLMJob's creation (instead of deadline)."),
        "expectedDuration": _duration("How long the job is expected to run; the planner reserves this much "
                                      "time before the deadline."),
        "interruptible": boolean("The job checkpoints on SIGTERM and may run in several segments, suspended "
                                 "and resumed between them (built-in worker: train, finetune).", default=False),
        "maxIntensity": number("threshold policy: start when the forecast intensity (gCO2e/kWh) is at or "
                               "below this.", minimum=0, exclusive_minimum=True, maximum=5000),
        "zone": string("Electricity Maps zone key to plan for, overriding the node pool's "
                       "llmasos.io/carbon-zone label.", max_length=64),
        "safetyMargin": _duration("Extra time kept free before the deadline.", default="15m"),
        "minSegment": _duration("interruptible jobs: the shortest run between two suspensions (each resume "
                                "costs a checkpoint restore).", default="15m"),
        "maxSegments": integer("interruptible jobs: at most this many runs (segments); no limit when unset.",
                               minimum=1, maximum=1000),
    }
    return obj(
        "When to run: carbon-aware timing. immediate runs now; deadline runs in the lowest-carbon window that "
        "still ends before the deadline; threshold starts as soon as the grid is at or below maxIntensity, and "
        "at the latest start otherwise.",
        fields,
        default=defaults_of(fields),
        rules=[
            rule("!(has(self.deadline) && has(self.maxDelay))", DEADLINE_OR_MAX_DELAY, field_path=".maxDelay"),
            *(need.rule() for need in CARBON_NEEDS),
        ],
    )


def power_schema() -> Schema:
    return obj(
        "GPU power capping applied by the node agent to exactly this job's GPUs, restored when the pod ends. "
        "Omitted: the operator's defaultPowerPolicy setting applies.",
        {
            "policy": string("none: leave limits alone. limit: cap at limitWatts. fraction: cap at fraction of "
                             "the GPU's maximum limit. energyOptimal: search for the lowest-energy limit whose "
                             "slowdown stays within maxSlowdown (a job of several pods is searched once, on its "
                             "first pod; the other pods follow that limit).",
                             enum=list(POWER_POLICIES), default="none"),
            "limitWatts": integer("Power limit in watts (clamped to the GPU's NVML min/max).", minimum=50,
                                  maximum=1500),
            "fraction": number("Fraction of the GPU's maximum power limit.", minimum=0.1, maximum=1.0),
            "maxSlowdown": number("energyOptimal: the largest accepted throughput slowdown (1.10 = 10% slower).",
                                  default=1.10, minimum=1.0, maximum=2.0),
        },
        rules=[
            *(need.rule() for need in POWER_NEEDS),
            # The OpenAPI minimum alone lets an integer 0 through: the API server compares an integer value with
            # the bound truncated to an integer (0.1 -> 0). CEL compares numbers as doubles.
            rule("!has(self.fraction) || self.fraction >= 0.1", "fraction must be between 0.1 and 1.0",
                 field_path=".fraction"),
        ],
    )


def spec_schema() -> Schema:
    return obj(
        "What to run, where and when.",
        {
            "task": string("The kind of workload.", enum=list(TASKS), default="train",
                           rules=[rule("self == oldSelf", f"task {IMMUTABLE}")]),
            "model": model_schema() | {"x-kubernetes-validations": [*model_schema()["x-kubernetes-validations"],
                                                                   rule("self == oldSelf", f"model {IMMUTABLE}")]},
            "image": string("Worker image; defaults to the operator's setting workerImage.", max_length=512),
            "command": array("Overrides the container entrypoint (default: llmasos-worker).",
                             string("An argument.", max_length=4096), max_items=64),
            "args": array("Arguments to the command.", string("An argument.", max_length=4096), max_items=256),
            "env": array("Extra environment variables (core/v1 EnvVar).", embedded("An EnvVar."), max_items=128),
            "volumes": array(f"Volumes for the worker pods (core/v1 Volume). Allowed types: "
                             f"{', '.join(ALLOWED_VOLUME_TYPES)}; projected sources: "
                             f"{', '.join(ALLOWED_PROJECTED_SOURCES)}. A cluster admin allows every type in a "
                             f"namespace by labelling it {ALLOW_HOST_VOLUMES_LABEL}=true.", embedded("A Volume."),
                             max_items=MAX_VOLUMES),
            "volumeMounts": array("Mounts into the worker container (core/v1 VolumeMount).",
                                  embedded("A VolumeMount."), max_items=32),
            "taskConfig": obj("Task settings passed to the worker as LLMASOS_TASK_CONFIG: steps, batch_size, lr, "
                              "checkpoint_every, method, prompts, ... (every key in docs/worker.md). Without "
                              "spec.command only the built-in worker's keys are accepted; with it, any.",
                              preserve_unknown=True),
            "parallelism": parallelism_schema() | {
                "x-kubernetes-validations": [*parallelism_schema()["x-kubernetes-validations"],
                                             rule("self == oldSelf", f"parallelism {IMMUTABLE}")]},
            "resources": obj("CPU and memory requested per worker pod (GPUs come from parallelism.gpusPerNode).",
                             {"cpu": quantity("CPU per pod.", "2"), "memory": quantity("Memory per pod.", "8Gi")},
                             default={}),
            "placement": obj(
                "Where the job may run.",
                {
                    "nodePools": array("Allowed node pools (values of the llmasos.io/pool node label). Empty: any; "
                                       f"required in a namespace annotated {ALLOWED_NODE_POOLS_ANNOTATION} "
                                       "(comma-separated pools), and then only pools it lists.",
                                       string("A pool name.", max_length=63), max_items=32, list_type="set"),
                    "preferEfficient": boolean("Among the allowed pools that fit, prefer the one with the lowest "
                                               "expected energy and emissions (else the first listed).",
                                               default=True),
                },
                default={},
            ),
            "carbon": carbon_schema(),
            "power": power_schema(),
            "accounting": obj(
                "How energy and emissions are accounted.",
                {
                    "pue": number("Power usage effectiveness of the data centre; defaults to the operator's "
                                  "setting.", minimum=1.0, maximum=3.0),
                    "team": string("Team to report under (default: the llmasos.io/team label).", max_length=63),
                },
                default={},
            ),
            "maxRuntime": _duration(
                "Hard limit on the running time of one attempt; the job fails when exceeded. It is the child Job's "
                "activeDeadlineSeconds, counted from when the Job starts or resumes (pods still starting included); "
                "Kubernetes resets it on every resume, so for an interruptible job run in carbon segments (or one "
                "suspended and resumed with suspend) it limits each segment, not the total run time."),
            "backoffLimit": integer("How many times the whole worker group is restarted after a worker fails.",
                                    default=2, minimum=0, maximum=20),
            "queueName": string("The Kueue LocalQueue to queue the job in (docs/kueue.md). The child Job carries it "
                                "as the kueue.x-k8s.io/queue-name label, is created suspended, and Kueue decides when "
                                "it is admitted and on which flavour (node pool). Read when a child Job is created.",
                                max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
            "suspend": boolean("true removes the running pods (the job keeps its place); false resumes it.",
                               default=False),
            "ttlSecondsAfterFinished": integer("Delete the LLMJob this many seconds after it finished.",
                                               minimum=0, maximum=31_536_000),
        },
        required=["model"],
    )


def _condition() -> Schema:
    return obj(
        "A metav1.Condition.",
        {
            "type": string("Condition type (Scheduled, Deferred, Running, Suspended, Succeeded, Failed, "
                           "CarbonDataDegraded, CarbonDataReplay, CarbonBudget, WorkersReady, DeadlineAtRisk, "
                           "Admitted).", max_length=316),
            "status": string("True, False or Unknown.", enum=["True", "False", "Unknown"]),
            "reason": string("CamelCase reason.", max_length=1024),
            "message": string("Human-readable details.", max_length=32768),
            "lastTransitionTime": string("When status last changed.", fmt="date-time"),
            "observedGeneration": integer("The generation this condition was computed for.", fmt="int64"),
        },
        required=["type", "status"],
    )


def status_schema() -> Schema:
    timestamp = {"type": "string", "format": "date-time"}
    return obj(
        "Observed state, written by the operator.",
        {
            "phase": string("Pending, Deferred, Running, Suspended, Succeeded or Failed.", enum=PHASES),
            "conditions": {**array("Conditions (metav1.Condition).", _condition(), max_items=32),
                           "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
            "observedGeneration": integer("The spec generation the status reflects.", fmt="int64"),
            "message": string("Summary of the current state.", max_length=4096),
            "pool": string("The node pool chosen for the job.", max_length=63),
            "zone": string("Grid zone it is planned and accounted in: spec.carbon.zone, or the pool's.", max_length=64),
            "gpuProduct": string("The GPU product of that pool.", max_length=128),
            "scheduledStart": string("Planned start while Deferred; actual start once started.", max_length=64),
            "startTime": {**timestamp, "description": "When the first worker started."},
            "completionTime": {**timestamp, "description": "When the job reached Succeeded or Failed."},
            "attempt": integer("Current attempt of the worker group (0 for the first).", minimum=0),
            "workers": obj("Worker pods.", {
                "ready": integer("Running and ready.", minimum=0),
                "total": integer("Requested.", minimum=0),
                "summary": string("ready/total, for kubectl.", max_length=32),
            }),
            "children": obj("Objects the operator created.", {
                "job": string("The batch/v1 Job of the current attempt.", max_length=253),
                "service": string("The headless Service.", max_length=253),
            }),
            "plan": obj("The carbon-aware plan.", preserve_unknown=True),
            "carbon": carbon_status_schema(),
            "power": power_status_schema(),
            "progress": progress_status_schema(),
        },
    )


def llmjob_schema() -> Schema:
    return obj(
        "An LLM workload (training, fine-tuning, inference or compression) that LLMasOS runs as distributed "
        "PyTorch or Ray pods at the lowest-carbon time before its deadline, on the most efficient node pool.",
        {
            "apiVersion": string("API version.", max_length=64),
            "kind": string("Kind.", max_length=64),
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
        required=["spec"],
        rules=[rule(f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                    f"metadata.name must be at most {MAX_NAME_LENGTH} characters (child Jobs and pods derive "
                    "their names from it)")],
    )


@functools.cache
def _spec() -> Schema:
    return spec_schema()


def spec_field(path: str) -> Schema:
    """The schema of `spec.<path>` ("carbon.policy"), shared: read it, never change it."""
    return field_at(_spec(), path)


def spec_default(path: str) -> Any:
    """The schema's default for `spec.<path>`; None where it declares none."""
    return spec_field(path).get("default")


def check_choice(path: str, value: object) -> str:
    """`value` when it is one of the schema's enum values for `spec.<path>`; else SpecError naming the field."""
    allowed = spec_field(path)["enum"]
    if value not in allowed:
        raise SpecError(f"{path} must be one of {', '.join(allowed)}, got {value!r}", f"spec.{path}")
    return str(value)
