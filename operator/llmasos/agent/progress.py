"""The worker's progress, which the energyOptimal search divides energy by: read from the worker's local /metrics.

The worker (worker_image) serves Prometheus text on LLMASOS_PROGRESS_PORT (default 9401); the agent reads the
first counter it finds among `metric_names` (tokens first: the unit users care about; steps otherwise), summed
over samples (llmasos_worker's progress server exports tokens_total and step). If the worker also exports
`<name without _total>_updated_timestamp_seconds` (when that counter last moved, on any clock: only differences
are used), the search times throughput with it, so 5 s polling does not quantise progress. Workers need no API
credentials.

Tokens are read besides: `llmasos_worker_tokens_total` (whatever `metric_names` says) is what the operator divides
energy by for energy per token, so every reading carries it when the worker exports it. The worker's counter is the
job's global count (tokens of the global batch, cumulative across resumes from a checkpoint), the same on every pod
of a data-parallel group: the operator takes the largest of a job's pods, never their sum. So are the step, the step
the run ends at and the run time the worker still needs at its recent pace (`llmasos_worker_step`,
`llmasos_worker_planned_steps`, `llmasos_worker_remaining_seconds`), for the LLMJob's `status.progress`.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from prometheus_client.parser import text_string_to_metric_families

from llmasos.agent.pods import NodePodView

log = logging.getLogger(__name__)
TOKENS_METRIC = "llmasos_worker_tokens_total"
STEP_METRIC = "llmasos_worker_step"
PLANNED_STEPS_METRIC = "llmasos_worker_planned_steps"
REMAINING_METRIC = "llmasos_worker_remaining_seconds"
DEFAULT_PROGRESS_METRICS = (TOKENS_METRIC, "llmasos_worker_samples_total", STEP_METRIC)


@dataclass(frozen=True)
class ProgressReading:
    work: float
    updated_at: float | None = None  # the worker's own timestamp of the last advance, if it exports one
    tokens: float | None = None  # the worker's cumulative tokens (llmasos_worker_tokens_total), if it exports them
    step: float | None = None  # optimizer steps done (llmasos_worker_step), if it exports them
    planned_steps: float | None = None  # the step its run ends at (llmasos_worker_planned_steps), if it has one
    remaining_seconds: float | None = None  # run time it needs to get there at its recent pace, once it knows


class ProgressReader(Protocol):
    def read(self, pod: NodePodView, gpus: tuple[int, ...]) -> ProgressReading | None:
        """Cumulative progress of the pod, or None when it cannot be read now."""
        ...


class NoProgress:
    """For nodes where progress cannot be reached: energyOptimal then holds the default limit."""

    def read(self, pod: NodePodView, gpus: tuple[int, ...]) -> ProgressReading | None:
        return None


def parse_progress(text: str, metric_names: Sequence[str]) -> ProgressReading | None:
    """The first of `metric_names` present in Prometheus text (summed over its samples), with its timestamp, and
    the worker's token counter, step and planned steps when present (whichever metric measures the work)."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    tokens = values.get(TOKENS_METRIC)
    for name in metric_names:
        if name in values:
            base = name.removesuffix("_total")
            stamp = values.get(f"{base}_updated_timestamp_seconds")
            return ProgressReading(values[name], stamp, tokens, values.get(STEP_METRIC),
                                   values.get(PLANNED_STEPS_METRIC), values.get(REMAINING_METRIC))
    return None


class WorkerCountsOverlay:
    """Work from one reader, the worker's own counts (tokens, step, planned steps, remaining run time) from another.

    For real workers on a node whose GPUs are simulated (the local real node): the simulated GPUs' work is what
    their simulated power goes with, so the energyOptimal search keeps measuring that, while the tokens and steps
    the LLMJob's status shows are the workers' own, read from their /metrics."""

    def __init__(self, work: ProgressReader, counts: ProgressReader) -> None:
        self._work, self._counts = work, counts

    def read(self, pod: NodePodView, gpus: tuple[int, ...]) -> ProgressReading | None:
        reading, counts = self._work.read(pod, gpus), self._counts.read(pod, gpus)
        if counts is None or reading is None:
            return reading or counts
        return replace(reading, tokens=counts.tokens, step=counts.step, planned_steps=counts.planned_steps,
                       remaining_seconds=counts.remaining_seconds)


class HttpProgressReader:
    """GET http://<pod IP>:<progress port>/metrics with a short timeout."""

    def __init__(self, metric_names: Sequence[str] = DEFAULT_PROGRESS_METRICS, timeout_s: float = 1.0) -> None:
        self._names = tuple(metric_names)
        self._timeout = timeout_s

    def read(self, pod: NodePodView, gpus: tuple[int, ...]) -> ProgressReading | None:
        if not pod.pod_ip or not pod.progress_port:
            return None
        host = f"[{pod.pod_ip}]" if ":" in pod.pod_ip else pod.pod_ip
        url = f"http://{host}:{pod.progress_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout) as resp:
                text = resp.read(1_000_000).decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.debug("progress of %s/%s unavailable: %s", pod.namespace, pod.name, exc)
            return None
        return parse_progress(text, self._names)
