"""The NVML backend against a fake pynvml module (same names, same error class shape) — no GPU needed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from llmasos.agent.backend import GpuBackendError
from llmasos.agent.nvml import NvmlBackend

NOT_SUPPORTED, NO_PERMISSION = 3, 4


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def fake_nvml(with_counter: bool = True, can_set: bool = True) -> Any:
    limits = {0: 400_000, 1: 400_000}
    calls: list[tuple[str, object]] = []

    def set_limit(h: int, mw: int) -> None:
        if not can_set:
            raise NVMLError(NO_PERMISSION)
        calls.append(("set", (h, mw)))
        limits[h] = mw

    def energy(h: int) -> int:
        if not with_counter:
            raise NVMLError(NOT_SUPPORTED)
        return 123_456_789 + h

    return SimpleNamespace(
        NVMLError=NVMLError,
        NVML_ERROR_NOT_SUPPORTED=NOT_SUPPORTED,
        NVML_ERROR_NO_PERMISSION=NO_PERMISSION,
        NVML_ERROR_INVALID_ARGUMENT=2,
        calls=calls,
        nvmlInit=lambda: calls.append(("init", None)),
        nvmlShutdown=lambda: calls.append(("shutdown", None)),
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda h: f"GPU-{h:08x}".encode(),  # older pynvml returns bytes
        nvmlDeviceGetName=lambda h: "NVIDIA A100-SXM4-80GB",
        nvmlDeviceGetPowerManagementLimitConstraints=lambda h: [100_000, 400_000],
        nvmlDeviceGetPowerManagementDefaultLimit=lambda h: 400_000,
        nvmlDeviceGetPowerManagementLimit=lambda h: limits[h],
        nvmlDeviceSetPowerManagementLimit=set_limit,
        nvmlDeviceGetPowerUsage=lambda h: 287_500,
        nvmlDeviceGetTotalEnergyConsumption=energy,
    )


def test_info_limits_and_energy() -> None:
    nvml = fake_nvml()
    backend = NvmlBackend(nvml)
    assert backend.device_count() == 2
    info = backend.info(1)
    assert (info.uuid, info.name, info.min_limit_mw, info.max_limit_mw, info.default_limit_mw) == (
        "GPU-00000001", "NVIDIA A100-SXM4-80GB", 100_000, 400_000, 400_000,
    )  # fmt: skip
    assert info.has_energy_counter
    assert info.limits.max_w == 400.0
    assert backend.total_energy_mj(1) == 123_456_790
    assert backend.power_usage_mw(0) == 287_500
    backend.set_power_limit_mw(0, 250_000)
    assert backend.power_limit_mw(0) == 250_000
    backend.close()
    assert nvml.calls[0] == ("init", None)
    assert nvml.calls[-1] == ("shutdown", None)


def test_limit_outside_constraints_is_rejected_before_nvml() -> None:
    nvml = fake_nvml()
    backend = NvmlBackend(nvml)
    with pytest.raises(GpuBackendError, match="outside") as err:
        backend.set_power_limit_mw(0, 50_000)
    assert err.value.permanent
    assert ("set", (0, 50_000)) not in nvml.calls


def test_gpu_without_energy_counter_returns_none() -> None:
    backend = NvmlBackend(fake_nvml(with_counter=False))
    assert backend.total_energy_mj(0) is None
    assert not backend.info(0).has_energy_counter


def test_missing_permission_is_a_permanent_error() -> None:
    backend = NvmlBackend(fake_nvml(can_set=False))
    with pytest.raises(GpuBackendError, match="NVML") as err:
        backend.set_power_limit_mw(0, 300_000)
    assert err.value.permanent
