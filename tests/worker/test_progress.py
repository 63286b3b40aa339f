"""The progress endpoint: Prometheus text with step, tokens, tokens/s, loss, and NVML energy for our own GPUs."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest

from llmasos_worker.progress import NoEnergy, NvmlEnergy, Progress, ProgressServer, energy_meter, render


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeNvml:
    """Three GPUs on the host; energy counters in millijoules that advance when told to."""

    def __init__(self) -> None:
        self.energy_mj = {0: 1_000_000, 1: 2_000_000, 2: 3_000_000}
        self.initialised = False

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return f"GPU-{handle}aaa"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        return self.energy_mj[handle]


def test_tokens_per_second_over_recent_steps() -> None:
    clock = FakeClock()
    progress = Progress(clock)
    for step in range(1, 11):
        clock.now += 0.5
        progress.update(step, step * 1000, loss=5.0 - step * 0.1)
    snap = progress.snapshot()
    assert (snap.step, snap.tokens) == (10, 10_000)
    assert snap.tokens_per_second == pytest.approx(2000.0)
    assert snap.loss == pytest.approx(4.0)
    progress.update(11, 11_000)  # a step without a logged loss keeps the last one
    assert progress.snapshot().loss == pytest.approx(4.0)


def test_remaining_run_time_at_the_recent_step_rate() -> None:
    clock = FakeClock()
    progress = Progress(clock)
    progress.update(0, 0)
    clock.now += 1.0
    progress.update(1, 1000)  # a step, but no planned total: nothing to estimate
    assert progress.snapshot().remaining_seconds is None
    progress.plan(100)
    for step in range(2, 51):  # slow first steps (2 s), then 1 step/s: only the last 30 s count
        clock.now += 2.0 if step < 10 else 1.0
        progress.update(step, step * 1000)
    snap = progress.snapshot()
    assert snap.remaining_seconds == pytest.approx(50 / 1.0)
    assert f"llmasos_worker_remaining_seconds {snap.remaining_seconds!r}" in render(snap, {}, {}).replace("{}", "")


def test_one_pause_of_fast_steps_does_not_read_as_a_slow_pace() -> None:
    """Fast steps (100/s) are timed over their last 30 s, not their last 20 steps (0.2 s): a 1 s pause (the machine
    busy) moves the remaining run time by a few percent, where 20 steps would have read it as 6 times slower. Slow
    steps still count over their last 20 (a run 2 s per step does not average over 30 s)."""
    clock = FakeClock()
    progress = Progress(clock)
    progress.plan(20_000)
    for step in range(1, 6001):  # 60 s at 100 steps/s
        clock.now += 0.01
        progress.update(step, step)
    assert progress.snapshot().remaining_seconds == pytest.approx(140.0)
    clock.now += 1.0  # a pause
    for step in range(6001, 6011):
        clock.now += 0.01
        progress.update(step, step)
    paused = progress.snapshot().remaining_seconds
    assert paused is not None
    assert 140.0 < paused < 140.0 * 1.05, paused
    assert progress.snapshot().tokens_per_second == pytest.approx(3000 / 31.0, rel=0.01)

    slow = Progress(clock)
    slow.plan(100)
    for step in range(1, 41):
        clock.now += 2.0
        slow.update(step, step)
    assert slow.snapshot().remaining_seconds == pytest.approx(60 * 2.0)
    assert len(slow._marks) == 21, "20 steps of 2 s span more than 30 s: nothing older is kept"


def test_render_is_prometheus_text() -> None:
    progress = Progress(FakeClock())
    progress.update(3, 384, 2.5)
    text = render(progress.snapshot(), {"GPU-1aaa": 12.5}, {"job": 'a"b', "namespace": "ns"})
    assert '# TYPE llmasos_worker_tokens_total counter' in text
    assert 'llmasos_worker_step{job="a\\"b",namespace="ns"} 3.0' in text
    assert "llmasos_worker_planned_steps" not in text  # only a task with a planned total exports it
    progress.plan(40)
    assert 'llmasos_worker_planned_steps{job="a\\"b",namespace="ns"} 40.0' in render(progress.snapshot(), {}, {
        "job": 'a"b', "namespace": "ns"})
    assert 'llmasos_worker_loss{job="a\\"b",namespace="ns"} 2.5' in text
    assert 'llmasos_worker_gpu_energy_joules_total{job="a\\"b",namespace="ns",gpu="GPU-1aaa"} 12.5' in text
    assert text.count("# TYPE llmasos_worker_gpu_energy_joules_total") == 1


@pytest.mark.parametrize(
    ("visible", "expected"),
    [(None, {"GPU-0aaa", "GPU-1aaa", "GPU-2aaa"}), ("2,0", {"GPU-0aaa", "GPU-2aaa"}), ("GPU-1", {"GPU-1aaa"}),
     ("", set())],
)
def test_energy_only_for_our_own_devices(monkeypatch: pytest.MonkeyPatch, visible: str | None,
                                         expected: set[str]) -> None:
    fake = FakeNvml()
    monkeypatch.setattr("llmasos_worker.progress._import_nvml", lambda: fake)
    meter = energy_meter(visible)
    if not expected:
        assert isinstance(meter, NoEnergy)
        return
    assert isinstance(meter, NvmlEnergy)
    assert meter.joules() == dict.fromkeys(expected, 0.0)
    for i in fake.energy_mj:
        fake.energy_mj[i] += 1500 * (i + 1)  # millijoules
    assert meter.joules() == {f"GPU-{i}aaa": 1.5 * (i + 1) for i in range(3) if f"GPU-{i}aaa" in expected}


def test_no_nvml_means_no_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("llmasos_worker.progress._import_nvml", lambda: None)
    assert energy_meter().joules() == {}

    class Broken(FakeNvml):
        def nvmlInit(self) -> None:
            raise RuntimeError("NVML Shared Library Not Found")

    monkeypatch.setattr("llmasos_worker.progress._import_nvml", lambda: Broken())
    assert isinstance(energy_meter(), NoEnergy)


def test_server_serves_metrics_and_404() -> None:
    progress = Progress()
    progress.update(7, 700, 1.25)
    meter: Any = NoEnergy()
    server = ProgressServer(progress, meter, {"job": "j"}, "127.0.0.1", 0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert 'llmasos_worker_step{job="j"} 7.0' in body
        assert 'llmasos_worker_tokens_total{job="j"} 700.0' in body
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=5)
        info.value.close()
        assert info.value.code == 404
    finally:
        server.stop()


def test_node_agent_reads_worker_metrics() -> None:
    """Contract with operator/llmasos/agent/progress.py: it parses exactly what the worker serves."""
    from llmasos.agent.progress import DEFAULT_PROGRESS_METRICS, parse_progress

    clock = FakeClock()
    progress = Progress(clock)
    clock.now += 2.0
    progress.plan(10)
    progress.update(4, 4096, 3.0)
    reading = parse_progress(render(progress.snapshot(), {"GPU-0aaa": 1.0}, {"job": "j"}), DEFAULT_PROGRESS_METRICS)
    assert reading is not None
    assert reading.work == 4096.0
    assert reading.updated_at == 102.0
    assert (reading.step, reading.planned_steps) == (4.0, 10.0)
