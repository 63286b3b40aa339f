"""One energyOptimal search per multi-node job: the agent of the group's first pod searches, the others follow it.

Why: in data, tensor and pipeline parallel training every rank waits for the slowest one, so each node's agent
measures the job's common throughput. With one search per node, a probe on one node slows the whole job and spoils
the measurements of the searches on the other nodes. So the pod with index 0 of the worker group (the *leader*)
is searched as on a single node, and every other pod of the same attempt (a *follower*) applies the leader's
limit, scaled to its own GPUs' default limit. Followers read it from the leader node's report
(`llmasos-power-<node>`), which the leader's agent writes at once when the limit moves; the leader waits the
followers' lag out before it measures (`follow_lag_s`).

A follower that cannot read its leader keeps the last limit it followed while that reading is younger than the
stale bound, then returns to its GPUs' default limit: it never caps on a guess. The decisions here are pure; the
Kubernetes side (finding the leader pod's node, reading its report) is `kube_adapter.ApiLeaderSource`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from llmasos.agent.pods import NodePodView
from llmasos.agent.power_policy import GpuLimits, SearchState
from llmasos.api.clock import parse_instant
from llmasos.api.node_report import PodPowerReport

FOLLOWING, LEADER_ENDED, LEADER_UNKNOWN = "Following", "LeaderEnded", "LeaderUnknown"


@dataclass(frozen=True)
class LeaderView:
    """What a follower takes from its leader pod's latest report."""

    limit_w: float | None  # the limit on the leader's GPUs; None once the leader pod ended
    default_w: float | None  # the leader GPUs' default limit (scales the limit to other GPU models)
    state: str
    chosen_w: float | None
    slowdown: float | None
    reported_at: float  # epoch seconds of the report


class LeaderSource(Protocol):
    def leader_of(self, pod: NodePodView) -> LeaderView | None:
        """The leader of `pod`'s worker group as its node last reported it; None while unknown (no leader pod
        scheduled yet, no report yet). Raise TransientError on API trouble: the follower keeps what it had."""
        ...


def group_of(pod: NodePodView) -> tuple[str, str, str]:
    """Pods of one attempt of one LLMJob's worker group share this key."""
    return pod.namespace, pod.llmjob, pod.attempt


def is_leader(pod: NodePodView) -> bool:
    return bool(pod.llmjob) and pod.nnodes > 1 and pod.rank == 0


def is_follower(pod: NodePodView) -> bool:
    return bool(pod.llmjob) and pod.nnodes > 1 and pod.rank is not None and pod.rank > 0


def leader_view(reports: Sequence[PodPowerReport], namespace: str, name: str) -> LeaderView | None:
    """The leader pod's entry in its node's report, or None when the report does not hold it (yet)."""
    for r in reports:
        if r.namespace == namespace and r.name == name:
            limit = None if r.ended_at is not None else r.limit_w
            return LeaderView(limit, r.default_w, r.state, r.chosen_w, r.slowdown,
                              parse_instant(r.reported_at).timestamp())  # fmt: skip
    return None


def local_leader(
    pod: NodePodView, candidates: Iterable[tuple[NodePodView, SearchState | None, int | None]], now: float
) -> LeaderView | None:
    """The leader of `pod`'s group when it runs on this node too: (pod, its search, the limit on its GPUs now in mW)
    are at hand, no report to read. The limit is the one applied, as a report would show it (the default while the
    leader has no progress to measure)."""
    for view, search, limit_mw in candidates:
        if search is not None and limit_mw is not None and is_leader(view) and group_of(view) == group_of(pod):
            chosen = search.chosen
            slowdown = search.slowdown(chosen) if chosen is not None else None
            return LeaderView(limit_mw / 1000, search.limits.default_w, search.phase,
                              chosen.limit_w if chosen else None, slowdown, now)  # fmt: skip
    return None


def follow_target(view: LeaderView | None, limits: GpuLimits, now: float, stale_s: float) -> tuple[float, str]:
    """The limit a follower applies now, and the state it reports."""
    if view is None or now - view.reported_at > stale_s:
        return limits.default_w, LEADER_UNKNOWN
    if view.limit_w is None:
        return limits.default_w, LEADER_ENDED
    scaled = view.limit_w / view.default_w * limits.default_w if view.default_w else view.limit_w
    return limits.clamp(scaled), FOLLOWING
