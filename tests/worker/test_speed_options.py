"""The trainer's speed switches (torch.compile, fused AdamW, CUDA graphs) resolved per device, run on CPU; and the
read-only NVML guard the worker and bench/worker_gpu.py rely on."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from llmasos.api.worker_contract import EXIT_CONFIG_ERROR
from llmasos_worker.engine import StepOptions
from llmasos_worker.progress import NvmlWriteRefused, refuse_nvml_writes
from tests.worker.helpers import run_worker, worker_env

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_auto_is_fused_adamw_on_cuda_only_and_nothing_else() -> None:
    assert StepOptions.resolve("auto", "auto", "auto", CPU) == StepOptions(False, False, False)
    assert StepOptions.resolve("auto", "auto", "auto", CUDA) == StepOptions(False, True, False)
    assert StepOptions.resolve("auto", "auto", "auto", CUDA, tensor_parallel=2).fused_adamw is False


def test_explicit_switches() -> None:
    assert StepOptions.resolve("on", "on", "off", CPU) == StepOptions(True, True, False)
    assert StepOptions.resolve("off", "off", "auto", CUDA) == StepOptions(False, False, False)
    # CUDA graphs need CUDA (ignored on CPU) and come through compile's reduce-overhead mode
    assert StepOptions.resolve("off", "auto", "on", CPU) == StepOptions(False, False, False)
    assert StepOptions.resolve("off", "auto", "on", CUDA) == StepOptions(True, True, True)
    assert StepOptions.resolve("on", "auto", "on", CUDA, pipeline_parallel=2).compile is False


def test_compile_with_tensor_or_pipeline_parallel_fails_fast() -> None:
    run = run_worker(worker_env("train", nproc=2, tp=2, config={"compile": True}))
    assert run.returncode == EXIT_CONFIG_ERROR
    assert "data-parallel layouts only" in run.stderr


def test_fused_adamw_on_cpu_trains_like_the_loop_it_replaces() -> None:
    """Fused AdamW is off by default on CPU but honoured when asked: the same losses as the for-each loop."""
    config = {"steps": 3, "batch_size": 2, "log_every": 1}
    plain = run_worker(worker_env("train", config=config))
    fused = run_worker(worker_env("train", config={**config, "fused_adamw": True}))
    assert plain.returncode == fused.returncode == 0, plain.stderr + fused.stderr
    assert (plain.one("start")["options"]["fused_adamw"], fused.one("start")["options"]["fused_adamw"]) == (False,
                                                                                                          True)
    assert fused.losses() == pytest.approx(plain.losses(), rel=1e-4)


@pytest.mark.slow
def test_compiled_fused_training_on_cpu_checkpoints_and_evaluates(tmp_path: Path) -> None:
    """torch.compile and fused AdamW on CPU, 2 DDP ranks: trains, exports a model.pt with the eager names (loads
    into an eager GPT) and measures perplexity; the start event says what was in force. Slow: inductor's C++
    compilation took 2-3 minutes on 2 shared cores, even with its cache warm."""
    config = {"steps": 3, "batch_size": 4, "compile": True, "fused_adamw": True, "output_dir": str(tmp_path),
              "model": {"n_layer": 1}, "eval_batches": 1}
    run = run_worker(worker_env("train", nproc=2, dp=2, config=config), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.one("start")["options"] == {"compile": True, "fused_adamw": True, "cuda_graphs": False}
    done = run.one("done")
    assert done["perplexity"] > 1
    assert done["final_loss"] == done["final_loss"]  # finite, not NaN
    from llmasos_worker.loading import load_model

    loaded = load_model("", str(tmp_path / "model.pt"), {}, 0)
    assert loaded.config is not None
    assert loaded.config.n_layer == 1


def fake_nvml() -> types.ModuleType:
    module = types.ModuleType("pynvml")
    calls: list[str] = []

    def reader(name: str) -> object:
        def f(*args: object) -> str:
            calls.append(name)
            return name
        return f

    for name in ("nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount", "nvmlDeviceGetPowerUsage",
                 "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceSetPowerManagementLimit",
                 "nvmlDeviceSetPersistenceMode", "nvmlDeviceSetComputeMode", "nvmlDeviceResetGpuLockedClocks",
                 "nvmlDeviceSetGpuLockedClocks", "nvmlDeviceSetMigMode", "nvmlDeviceClearEccErrorCounts",
                 "nvmlSomeFutureCall"):
        setattr(module, name, reader(name))
    module.calls = calls  # type: ignore[attr-defined]
    module.NVML_SUCCESS = 0  # type: ignore[attr-defined]
    return module


def test_every_nvml_call_but_reads_is_refused() -> None:
    nvml = fake_nvml()
    refused = refuse_nvml_writes(nvml)
    assert set(refused) == {"nvmlDeviceSetPowerManagementLimit", "nvmlDeviceSetPersistenceMode",
                            "nvmlDeviceSetComputeMode", "nvmlDeviceResetGpuLockedClocks",
                            "nvmlDeviceSetGpuLockedClocks", "nvmlDeviceSetMigMode", "nvmlDeviceClearEccErrorCounts",
                            "nvmlSomeFutureCall"}
    for name in refused:
        with pytest.raises(NvmlWriteRefused, match=name):
            getattr(nvml, name)(object(), 100)
    assert nvml.nvmlDeviceGetPowerUsage(object()) == "nvmlDeviceGetPowerUsage"
    nvml.nvmlInit()
    assert nvml.calls == ["nvmlDeviceGetPowerUsage", "nvmlInit"]  # type: ignore[attr-defined]
    assert refuse_nvml_writes(nvml) == refused  # idempotent


def test_the_installed_pynvml_is_guarded_when_the_worker_imports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pynvml = pytest.importorskip("pynvml")
    from llmasos_worker.progress import _import_nvml

    # Restored afterwards: the node agent's tests may share this process, and the agent alone may set limits.
    for name in dir(pynvml):
        if name.startswith("nvml"):
            monkeypatch.setattr(pynvml, name, getattr(pynvml, name))
    assert _import_nvml() is pynvml
    with pytest.raises(NvmlWriteRefused):
        pynvml.nvmlDeviceSetPowerManagementLimit(None, 100_000)
