"""The control loop on simulated GPUs: exactly the pod's GPUs are capped, and every exit path restores defaults."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from llmasos.agent.backend import GpuBackendError
from llmasos.agent.main import run_loop
from llmasos.agent.sim import SimBackend
from llmasos.agent.snapshot import Snapshot
from llmasos.agent.state import StateStore
from llmasos.api.node_report import parse_node_report

from .builders import make_node, pod

DEFAULT = 400.0  # A100 SXM4 80GB: default = max = 400 W, min 100 W


def test_fraction_caps_exactly_the_pods_gpus() -> None:
    node = make_node(pod("a", gpus=3), pod("b", gpus=2, policy="fraction", fraction=0.8))
    agent = node.agent()
    agent.start()
    node.run(agent, 30)
    # fallback mapping: (default/a) takes 0-2, (default/b) takes 3-4
    assert node.limits_w() == [DEFAULT, DEFAULT, DEFAULT, 320.0, 320.0, DEFAULT, DEFAULT, DEFAULT]
    status = agent.snapshot.pod("b")
    assert status is not None
    assert status.gpus == (3, 4)
    assert status.limit_w == 320.0
    assert status.state == "Capped"


def test_limit_is_clamped_to_the_gpu_minimum() -> None:
    node = make_node(pod("a", gpus=1, policy="limit", limitWatts=50))
    agent = node.agent()
    agent.start()
    agent.tick()
    assert node.limits_w()[0] == 100.0


@pytest.mark.parametrize("how", ["deleted", "Succeeded", "Failed"])
def test_cap_restored_when_the_pod_ends(how: str) -> None:
    node = make_node(pod("a", gpus=2, policy="fraction", fraction=0.5))
    agent = node.agent()
    agent.start()
    node.run(agent, 20)
    assert node.limits_w()[:2] == [200.0, 200.0]
    if how == "deleted":
        node.pods.remove("a")
    else:
        node.pods.replace(pod("a", gpus=2, policy="fraction", phase=how, fraction=0.5))
    agent.tick()
    assert node.limits_w() == [DEFAULT] * 8
    ended = agent.snapshot.pod("a")
    assert ended is not None
    assert ended.state == "Ended"
    assert ended.ended_at is not None
    assert ended.energy_j > 0


def test_policy_changed_to_none_restores() -> None:
    node = make_node(pod("a", gpus=1, policy="fraction", fraction=0.6))
    agent = node.agent()
    agent.start()
    agent.tick()
    assert node.limits_w()[0] == 240.0
    node.pods.replace(pod("a", gpus=1, policy="none"))
    agent.tick()
    assert node.limits_w()[0] == DEFAULT
    assert agent._state.caps == ()


def test_shutdown_restores_every_cap_and_reports(tmp_path: Path) -> None:
    node = make_node(
        pod("a", gpus=4, policy="fraction", fraction=0.7),
        pod("b", gpus=4, policy="limit", limitWatts=150),
        state_file=tmp_path / "state.json",
    )
    agent = node.agent()
    agent.start()
    node.run(agent, 20)
    assert node.limits_w() == [280.0] * 4 + [150.0] * 4
    reports = len(node.sink.bodies)
    agent.shutdown()  # what SIGTERM leads to
    assert node.limits_w() == [DEFAULT] * 8
    assert StateStore(tmp_path / "state.json").load().caps == ()
    assert len(node.sink.bodies) == reports + 1


def test_run_loop_restores_when_a_pass_raises() -> None:
    node = make_node(pod("a", gpus=2, policy="fraction", fraction=0.5))
    agent = node.agent()
    calls = {"n": 0}
    real_tick = agent.tick

    def failing_tick() -> Snapshot:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("bug in a pass")
        return real_tick()

    agent.tick = failing_tick  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="bug in a pass"):
        run_loop(agent, threading.Event(), interval_s=0.0)
    assert node.limits_w() == [DEFAULT] * 8


def test_run_loop_stops_on_signal_event_and_restores() -> None:
    node = make_node(pod("a", gpus=1, policy="fraction", fraction=0.5))
    agent = node.agent()
    stop = threading.Event()
    real_tick = agent.tick

    def tick_then_stop() -> Snapshot:
        snap = real_tick()
        assert node.limits_w()[0] == 200.0
        stop.set()  # what the SIGTERM handler does
        return snap

    agent.tick = tick_then_stop  # type: ignore[method-assign]
    run_loop(agent, stop, interval_s=0.0)
    assert node.limits_w()[0] == DEFAULT


def test_kill_9_then_restart_restores_caps_of_pods_that_are_gone(tmp_path: Path) -> None:
    node = make_node(
        pod("a", gpus=2, policy="fraction", fraction=0.5),
        pod("b", gpus=2, policy="fraction", fraction=0.6),
        state_file=tmp_path / "state.json",
    )
    first = node.agent()
    first.start()
    node.run(first, 20)
    del first  # SIGKILL: no shutdown, caps stranded on the hardware
    assert node.limits_w()[:4] == [200.0, 200.0, 240.0, 240.0]
    node.pods.remove("a")  # pod a ended while no agent ran
    second = node.agent()
    second.start()
    assert node.limits_w()[:4] == [DEFAULT, DEFAULT, 240.0, 240.0]  # b still runs: its cap stays
    second.tick()
    assert node.limits_w()[:4] == [DEFAULT, DEFAULT, 240.0, 240.0]
    b = second.snapshot.pod("b")
    assert b is not None
    assert b.gpus == (2, 3)


def test_restart_with_api_down_restores_everything(tmp_path: Path) -> None:
    node = make_node(pod("a", gpus=2, policy="fraction", fraction=0.5), state_file=tmp_path / "state.json")
    first = node.agent()
    first.start()
    first.tick()
    del first
    node.pods.down = True
    second = node.agent()
    second.start()
    assert node.limits_w() == [DEFAULT] * 8
    node.pods.down = False
    second.tick()  # the API is back: the pod is capped again
    assert node.limits_w()[:2] == [200.0, 200.0]


def test_lost_state_file_still_uncaps_gpus_no_pod_owns(tmp_path: Path) -> None:
    node = make_node(pod("a", gpus=3, policy="limit", limitWatts=250), state_file=tmp_path / "state.json")
    first = node.agent()
    first.start()
    first.tick()
    del first
    (tmp_path / "state.json").write_text("garbage")
    node.pods.remove("a")
    second = node.agent()
    second.start()
    assert node.limits_w() == [DEFAULT] * 8


def test_cap_is_recorded_before_it_is_applied(tmp_path: Path) -> None:
    node = make_node(pod("a", gpus=1, policy="fraction", fraction=0.5), state_file=tmp_path / "state.json")
    seen: list[tuple[int, ...]] = []
    real_set = node.sim.set_power_limit_mw

    def spy(index: int, milliwatts: int) -> None:
        seen.append(tuple(c.applied_mw for c in StateStore(tmp_path / "state.json").load().caps))
        real_set(index, milliwatts)

    node.sim.set_power_limit_mw = spy  # type: ignore[method-assign]
    agent = node.agent()
    agent.start()
    agent.tick()
    assert seen == [(200_000,)]


def test_failed_restore_keeps_the_record_and_retries() -> None:
    node = make_node(pod("a", gpus=1, policy="fraction", fraction=0.5))
    agent = node.agent()
    agent.start()
    agent.tick()
    real_set = node.sim.set_power_limit_mw
    failures = {"left": 2}  # the pass that sees the pod end tries twice (on ending, then as an unowned cap)

    def flaky(index: int, milliwatts: int) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise GpuBackendError("GPU busy")
        real_set(index, milliwatts)

    node.sim.set_power_limit_mw = flaky  # type: ignore[method-assign]
    node.pods.remove("a")
    agent.tick()
    assert node.limits_w()[0] == 200.0
    assert [c.gpu for c in agent._state.caps] == [0]  # the record survives the failure
    agent.tick()
    assert node.limits_w()[0] == DEFAULT
    assert [c.gpu for c in agent._state.caps] == []
    assert agent.snapshot.counter("restore_errors") == 2


def test_api_outage_keeps_running_caps() -> None:
    node = make_node(pod("a", gpus=2, policy="fraction", fraction=0.5))
    agent = node.agent()
    agent.start()
    agent.tick()
    node.pods.down = True
    node.run(agent, 60)
    assert node.limits_w()[:2] == [200.0, 200.0]
    assert agent.snapshot.counter("pod_list_errors") == 12


@pytest.mark.parametrize(
    ("sim_options", "tolerance"),
    [({}, 0.01), ({"counter_reset_every_s": 97.0}, 0.05), ({"has_energy_counter": False}, 0.02)],
)
def test_metered_energy_matches_truth(sim_options: dict[str, Any], tolerance: float) -> None:
    node = make_node(pod("a", gpus=2, policy="fraction", fraction=0.8), gpus=4, **sim_options)
    agent = node.agent()
    agent.start()
    node.run(agent, 1200)
    agent.tick()
    metered = sum(agent.snapshot.ledger.gpu_pod_joules.values())
    truth = sum(node.sim.true_energy_j(i) for i in range(4))
    assert metered == pytest.approx(truth, rel=tolerance)
    if "counter_reset_every_s" in sim_options:
        assert agent.snapshot.counter("counter_resets") >= 10
        assert metered < truth  # each reset loses at most one interval, never invents energy


def test_energy_is_attributed_per_pod_when_a_gpu_changes_hands() -> None:
    node = make_node(pod("a", gpus=1), gpus=1)
    agent = node.agent()
    agent.start()
    node.run(agent, 100)
    node.pods.remove("a")
    node.pods.pods.append(pod("b", gpus=1))
    node.run(agent, 200)
    snap = agent.snapshot
    a, b = snap.pod("a"), snap.pod("b")
    assert a is not None
    assert b is not None
    assert b.energy_j == pytest.approx(2 * a.energy_j, rel=0.1)
    assert a.energy_j + b.energy_j == pytest.approx(sum(snap.ledger.gpu_pod_joules.values()), rel=0.02)


def test_energy_optimal_through_the_agent_caps_all_pod_gpus_within_bound() -> None:
    node = make_node(pod("a", gpus=4, policy="energyOptimal", maxSlowdown=1.1), pod("b", gpus=2))
    agent = node.agent()
    agent.start()
    node.run(agent, 3600)
    status = agent.snapshot.pod("a")
    assert status is not None
    assert status.state == "Settled"
    assert status.chosen_w is not None
    assert node.limits_w()[:4] == [status.chosen_w] * 4
    assert node.limits_w()[4:] == [DEFAULT] * 4
    probe = SimBackend("nvidia-a100-80gb", 1, node.clock)
    probe.set_workload(0, node.workload)
    base_thr = probe.true_rates(0)[1]
    probe.set_power_limit_mw(0, round(status.chosen_w * 1000))
    assert base_thr / probe.true_rates(0)[1] <= 1.10


def test_restarted_agent_keeps_a_settled_search(tmp_path: Path) -> None:
    node = make_node(pod("a", gpus=2, policy="energyOptimal", maxSlowdown=1.1), state_file=tmp_path / "state.json")
    first = node.agent()
    first.start()
    node.run(first, 3600)
    settled = first.snapshot.pod("a")
    assert settled is not None
    assert settled.state == "Settled"
    assert settled.chosen_w is not None
    assert settled.chosen_w < DEFAULT
    del first  # SIGKILL: no shutdown
    second = node.agent()
    second.start()
    seen: set[float] = set()
    for _ in range(120):  # 10 minutes: a new search would measure the default limit first, for two windows
        node.run(second, 5)
        seen.update(node.limits_w()[:2])
    after = second.snapshot.pod("a")
    assert after is not None
    assert seen == {settled.chosen_w}, "the chosen limit held through the restart; no new baseline at the default"
    assert (after.state, after.chosen_w, after.searches) == ("Settled", settled.chosen_w, settled.searches)


def test_restarted_agent_goes_on_with_a_search_in_progress(tmp_path: Path) -> None:
    node = make_node(pod("a", gpus=1, policy="energyOptimal", maxSlowdown=1.1), state_file=tmp_path / "state.json")
    first = node.agent()
    first.start()
    while (status := first.snapshot.pod("a")) is None or status.state != "Profile" or node.limits_w()[0] == DEFAULT:
        node.run(first, 5)
    probing = node.limits_w()[0]
    del first
    second = node.agent()
    second.start()
    node.run(second, 5)
    resumed = second.snapshot.pod("a")
    assert resumed is not None
    assert (resumed.state, node.limits_w()[0]) == ("Profile", probing), "the baseline is not measured again"
    node.run(second, 3600)
    final = second.snapshot.pod("a")
    assert final is not None
    assert (final.state, final.searches) == ("Settled", 1)


def test_a_saved_search_is_not_resumed_for_another_bound(tmp_path: Path) -> None:
    node = make_node(pod("a", gpus=1, policy="energyOptimal", maxSlowdown=1.1), state_file=tmp_path / "state.json")
    first = node.agent()
    first.start()
    node.run(first, 3600)
    del first
    # The same pod uid with another bound (a changed spec is a new pod in practice; the record must not decide).
    node.pods.replace(pod("a", gpus=1, policy="energyOptimal", maxSlowdown=1.3))
    second = node.agent()
    second.start()
    node.run(second, 5)
    assert second.snapshot.pod("a").state == "Baseline"  # type: ignore[union-attr]
    assert node.limits_w()[0] == DEFAULT


def test_energy_optimal_without_progress_holds_the_default() -> None:
    node = make_node(pod("a", gpus=1, policy="energyOptimal"))
    agent = node.agent()
    agent._progress = type("NoProgress", (), {"read": lambda self, p, g: None})()
    agent.start()
    node.run(agent, 600)
    assert node.limits_w()[0] == DEFAULT
    assert agent.snapshot.pod("a").state == "NoProgress"  # type: ignore[union-attr]


def test_report_rate_and_content() -> None:
    node = make_node(pod("a", gpus=2, policy="fraction", fraction=0.8))
    agent = node.agent(report_interval_s=60.0)
    agent.start()
    node.run(agent, 600)
    assert 10 <= len(node.sink.bodies) <= 12  # ~one a minute in steady state
    reports = parse_node_report(node.sink.bodies[-1])
    assert [(r.name, r.policy, r.limit_w, r.state) for r in reports] == [("a", "fraction", 320.0, "Capped")]
    assert reports[0].gpus == (node.sim.info(0).uuid, node.sim.info(1).uuid)
    assert reports[0].energy_j > 0
    before = len(node.sink.bodies)
    node.pods.remove("a")
    node.run(agent, 15)  # a change is reported early (within report_min_interval_s), not a minute later
    assert len(node.sink.bodies) == before + 1
    assert parse_node_report(node.sink.bodies[-1])[0].ended_at is not None


def test_sim_rejects_limits_outside_nvml_range() -> None:
    node = make_node(product="nvidia-l4", gpus=1)
    sim: SimBackend = node.sim
    with pytest.raises(GpuBackendError, match="outside"):
        sim.set_power_limit_mw(0, 30_000)
