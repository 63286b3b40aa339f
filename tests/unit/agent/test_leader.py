"""A multi-node energyOptimal job is searched once: the agent of its first pod searches, the other nodes follow it.

Two agents run on two simulated nodes with one clock; followers read the leader from the leader node's last report
body, parsed with the operator's own parser (the contract the API adapter reads through a GET).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmasos.agent.clock import ManualClock
from llmasos.agent.controller import PowerAgent
from llmasos.agent.leader import (
    FOLLOWING,
    LEADER_ENDED,
    LEADER_UNKNOWN,
    LeaderView,
    follow_target,
    is_follower,
    is_leader,
    leader_view,
)
from llmasos.agent.pods import NodePod, NodePodView, node_pod_from_object
from llmasos.agent.power_policy import GpuLimits, PowerSpec
from llmasos.agent.progress import ProgressReading
from llmasos.api.node_report import parse_node_report
from llmasos.errors import TransientError

from .builders import Node, make_node

A100 = GpuLimits(min_w=100, max_w=400, default_w=400)
H100 = GpuLimits(min_w=200, max_w=700, default_w=700)
SPEC = PowerSpec.from_mapping({"policy": "energyOptimal", "maxSlowdown": 1.1})


def worker(rank: int, nnodes: int = 2, job: str = "big", attempt: str = "0", gpus: int = 4) -> NodePod:
    return NodePod(f"{job}-{attempt}-{rank}", "default", f"uid-{job}-{attempt}-{rank}", llmjob=job, gpu_request=gpus,
                   power=SPEC, attempt=attempt, rank=rank, nnodes=nnodes)  # fmt: skip


class ReportSource:
    """Reads the leader pod's entry from the last report its node published; `fail` makes it raise like the API."""

    def __init__(self, node: Node, leader: str) -> None:
        self.node, self.leader, self.fail, self.reads = node, leader, False, 0

    def leader_of(self, pod: NodePodView) -> LeaderView | None:
        self.reads += 1
        if self.fail:
            raise TransientError("API server unreachable")
        if not self.node.sink.bodies:
            return None
        return leader_view(parse_node_report(self.node.sink.bodies[-1]), pod.namespace, self.leader)


def two_nodes(follower_product: str = "nvidia-a100-80gb") -> tuple[Node, Node, ReportSource]:
    lead = make_node(worker(0), name="gpu-a", gpus=4)
    follow = make_node(worker(1), name="gpu-b", gpus=4, product=follower_product, clock=lead.clock, seed=1)
    return lead, follow, ReportSource(lead, worker(0).name)


def started_pair(
    follower_product: str = "nvidia-a100-80gb",
) -> tuple[Node, Node, ReportSource, PowerAgent, PowerAgent]:
    """Both nodes with their agents started, the follower reading the leader through `ReportSource`."""
    lead_node, follow_node, source = two_nodes(follower_product)
    lead, follow = lead_node.agent(leaders=source), follow_node.agent(leaders=source)
    lead.start()
    follow.start()
    return lead_node, follow_node, source, lead, follow


def run(agents: list[PowerAgent], clock: ManualClock, seconds: float, each: Callable[[], None] | None = None) -> None:
    for _ in range(round(seconds / 5)):
        for a in agents:
            a.tick()
        if each is not None:
            each()
        clock.advance(5)


def test_roles_come_from_the_pod_the_job_controller_made() -> None:
    def obj(index: str | None, nnodes: str) -> dict[str, object]:
        annotations = {"batch.kubernetes.io/job-completion-index": index} if index is not None else {}
        return {
            "metadata": {"name": "p", "namespace": "ml", "uid": "u", "annotations": annotations,
                         "labels": {"llmasos.io/llmjob": "big", "llmasos.io/attempt": "2"}},
            "spec": {"containers": [{"env": [{"name": "NNODES", "value": nnodes}]}]},
        }  # fmt: skip

    lead, follower, single, other = (node_pod_from_object(obj(i, n)) for i, n in
                                     (("0", "2"), ("1", "2"), ("0", "1"), (None, "2")))  # fmt: skip
    assert (lead.rank, lead.nnodes, lead.attempt) == (0, 2, "2")
    assert is_leader(lead)
    assert not is_follower(lead)
    assert is_follower(follower)
    assert not is_leader(follower)
    assert not is_leader(single)
    assert not is_follower(single)
    assert not is_leader(other)
    assert not is_follower(other)
    bare = NodePod("x", "ml", "u", llmjob="", rank=1, nnodes=2)
    assert not is_follower(bare)  # not an LLMJob worker


def test_follow_target_scales_to_the_followers_gpu_and_never_guesses() -> None:
    view = LeaderView(300.0, 400.0, "Settled", 300.0, 1.04, reported_at=1000.0)
    assert follow_target(view, A100, now=1010, stale_s=180) == (300.0, FOLLOWING)
    assert follow_target(view, H100, now=1010, stale_s=180) == (525.0, FOLLOWING)  # 75 % of its own default
    assert follow_target(LeaderView(120.0, 400.0, "Profile", None, None, 1000.0), H100, 1010, 180) == (
        210.0, FOLLOWING)  # clamped to the H100's minimum  # fmt: skip
    assert follow_target(view, A100, now=1181, stale_s=180) == (400.0, LEADER_UNKNOWN)
    assert follow_target(None, A100, now=0, stale_s=180) == (400.0, LEADER_UNKNOWN)
    ended = LeaderView(None, 400.0, "Ended", 300.0, 1.04, reported_at=1000.0)
    assert follow_target(ended, A100, now=1010, stale_s=180) == (400.0, LEADER_ENDED)


def test_the_follower_applies_the_leaders_limit_and_never_searches_itself() -> None:
    lead_node, follow_node, _, lead, follow = started_pair()
    seen: list[tuple[float, float]] = []
    run([lead, follow], lead_node.clock, 900, each=lambda: seen.append(
        (lead_node.limits_w()[0], follow_node.limits_w()[0])))  # fmt: skip
    leader = lead.snapshot.pod(worker(0).name)
    follower = follow.snapshot.pod(worker(1).name)
    assert leader is not None
    assert follower is not None
    assert leader.chosen_w is not None
    assert leader.chosen_w < 400.0, "the leader's search settled below the default"
    assert leader.state == "Settled"
    assert len({w for w, _ in seen}) >= 3, "the leader probed several limits"
    assert follower.state == FOLLOWING
    assert follower.searches == 0, "the follower ran no search of its own"
    assert follower.chosen_w == leader.chosen_w
    assert follower.slowdown == pytest.approx(leader.slowdown, abs=1e-4)  # as the report rounds it
    assert follow_node.limits_w() == lead_node.limits_w(), "all four GPUs of both pods at the same limit"
    # Every limit the leader applied reached the follower within one follow interval and one pass (<= 3 passes).
    for i, (w, _) in enumerate(seen):
        if i >= 3 and seen[i - 3][0] == w:
            assert seen[i][1] == w, f"pass {i}: leader {w} W, follower {seen[i][1]} W"


def test_the_leader_reports_each_new_limit_at_once_and_measures_after_the_followers_lag() -> None:
    lead_node, _, source = two_nodes()
    lead = lead_node.agent(leaders=source)  # warm-up 5 s + follow interval 10 s + pass 5 s
    lead.start()
    changes: list[float] = []
    last = [lead_node.limits_w()[0]]

    def watch() -> None:
        if lead_node.limits_w()[0] != last[0]:
            last[0] = lead_node.limits_w()[0]
            changes.append(lead_node.clock.time())
            body = lead_node.sink.bodies[-1]  # written in the same pass, not up to report_min_interval later
            entry = parse_node_report(body)[0]
            assert entry.limit_w == last[0]
        search = lead._controls[worker(0).uid].search
        if changes and search is not None and search.window is not None:
            assert search.window.start.t >= changes[-1] + 20, "measured before the followers could follow"

    run([lead], lead_node.clock, 600, each=watch)
    assert len(changes) >= 3


def test_a_follower_that_cannot_read_its_leader_keeps_the_limit_then_falls_back_to_the_default() -> None:
    lead_node, follow_node, source, lead, follow = started_pair()
    run([lead, follow], lead_node.clock, 900)
    capped = follow_node.limits_w()[0]
    assert capped < 400.0
    source.fail = True
    run([follow], lead_node.clock, 100)  # the report read last is at most 60 + 100 s old: within leader_stale_s
    assert follow_node.limits_w()[0] == capped
    assert dict(follow.snapshot.counters)["leader_read_errors"] >= 8
    run([follow], lead_node.clock, 90)  # now older than 180 s
    assert follow_node.limits_w() == [400.0] * 4
    status = follow.snapshot.pod(worker(1).name)
    assert status is not None
    assert status.state == LEADER_UNKNOWN
    source.fail = False
    run([lead, follow], lead_node.clock, 20)
    assert follow_node.limits_w()[0] == lead_node.limits_w()[0] == capped


def test_a_follower_on_another_gpu_model_follows_the_same_fraction_of_its_default() -> None:
    lead_node, follow_node, _, lead, follow = started_pair(follower_product="nvidia-h100-80gb")
    run([lead, follow], lead_node.clock, 900)
    lead_w, follow_w = lead_node.limits_w()[0], follow_node.limits_w()[0]
    assert lead_w < 400.0
    assert follow_w == pytest.approx(lead_w / 400.0 * 700.0, abs=1.0)


def test_when_the_leader_ends_its_followers_get_the_default_back() -> None:
    lead_node, follow_node, _, lead, follow = started_pair()
    run([lead, follow], lead_node.clock, 900)
    assert follow_node.limits_w()[0] < 400.0
    lead_node.pods.remove(worker(0).name)
    run([lead, follow], lead_node.clock, 20)
    assert follow_node.limits_w() == [400.0] * 4
    status = follow.snapshot.pod(worker(1).name)
    assert status is not None
    assert status.state == LEADER_ENDED


def test_leader_and_follower_on_one_node_need_no_report() -> None:
    node = make_node(worker(0), worker(1), name="gpu-a", gpus=8)
    source = ReportSource(node, worker(0).name)
    source.fail = True  # any read through the API would fail: the leader's search is at hand instead
    agent = node.agent(leaders=source)
    agent.start()
    run([agent], node.clock, 900)
    limits = node.limits_w()
    assert limits[0] < 400.0
    assert limits == [limits[0]] * 8
    assert source.reads == 0
    status = agent.snapshot.pod(worker(1).name)
    assert status is not None
    assert status.state == FOLLOWING


def test_without_a_leader_source_every_pod_searches_for_itself() -> None:
    lead_node, follow_node, _ = two_nodes()
    follow = follow_node.agent()  # e.g. a pods file: no other node to read
    follow.start()
    run([follow], lead_node.clock, 300)
    status = follow.snapshot.pod(worker(1).name)
    assert status is not None
    assert status.searches == 1
    assert status.state != FOLLOWING


def test_a_local_leader_that_loses_its_progress_is_followed_to_the_default() -> None:
    node = make_node(worker(0), worker(1), name="gpu-a", gpus=8)
    agent = node.agent(leaders=ReportSource(node, worker(0).name))
    inner = agent._progress
    silent = {"on": False}

    class LeaderGoesQuiet:
        def read(self, pod: NodePodView, gpus: tuple[int, ...]) -> ProgressReading | None:
            return None if silent["on"] and pod.name == worker(0).name else inner.read(pod, gpus)

    agent._progress = LeaderGoesQuiet()
    agent.start()
    run([agent], node.clock, 200)
    assert node.limits_w()[0] < 400.0, "the leader is probing below its default"
    silent["on"] = True  # its worker stops answering mid-search: the leader goes back to its default ...
    run([agent], node.clock, 20)
    assert node.limits_w() == [400.0] * 8, "... and so does its follower, not to the probe the search stopped at"
    leader, follower = agent.snapshot.pod(worker(0).name), agent.snapshot.pod(worker(1).name)
    assert leader is not None
    assert follower is not None
    assert (leader.state, follower.state) == ("NoProgress", FOLLOWING)
