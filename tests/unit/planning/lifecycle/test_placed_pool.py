"""A placement survives an operator killed between creating the children and writing status: the child Job's node
affinity names the pool (observe_job reads it back), and the newest attempt's pool is the job's placement."""

from __future__ import annotations

from llmasos.cluster.builders import Owner, build_job
from llmasos.cluster.observe import observe_job
from llmasos.planning.lifecycle.decision import ObservedJob, placed_pool
from tests.unit.builders import make_spec


def test_the_pool_a_job_was_built_for_is_read_back_from_its_node_affinity() -> None:
    owner = Owner("j", "ns", "uid-1")
    job = build_job(owner, make_spec(), 0, "h100-east", "img")
    assert observe_job(job).pool == "h100-east"


def test_a_job_without_a_pool_affinity_has_none() -> None:
    assert observe_job({"metadata": {"name": "x"}, "spec": {"template": {"spec": {}}}}).pool == ""
    assert observe_job({"metadata": {"name": "x"}}).pool == ""


def test_the_newest_attempt_decides_the_placement() -> None:
    jobs = [ObservedJob("j-a0", 0, pool="a100"), ObservedJob("j-a1", 1, pool="h100")]
    assert placed_pool(jobs) == "h100"
    assert placed_pool(list(reversed(jobs))) == "h100"
    assert placed_pool([]) == ""
