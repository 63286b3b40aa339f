"""The real GPU backend: NVML through nvidia-ml-py (`pynvml`), which is what power capping needs on a GPU node.

Setting a limit needs CAP_SYS_ADMIN (the agent runs as uid 65532 and gets it from the file capabilities of the
image's `python-agent`; see `privileges`). GPUs older than Volta have no total energy counter: `total_energy_mj`
returns None for them and the agent integrates power samples instead. The pynvml module is a constructor argument so
the backend is unit-tested with a fake module on machines without a GPU.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from types import ModuleType
from typing import Any

from llmasos.agent.backend import GpuBackendError, GpuInfo, check_limit


def load_pynvml() -> ModuleType:
    """Import pynvml or explain which extra provides it."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise GpuBackendError("the nvml backend needs nvidia-ml-py: pip install 'llmasos[agent]'", True) from exc


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend:
    """GpuBackend over NVML. Handles are cached; calls are serialised (the metrics thread reads too)."""

    def __init__(self, nvml: Any | None = None) -> None:
        self._nvml: Any = nvml if nvml is not None else load_pynvml()
        self._lock = threading.Lock()
        self._handles: dict[int, object] = {}
        self._infos: dict[int, GpuInfo] = {}
        self._no_counter: set[int] = set()
        self._call(self._nvml.nvmlInit)

    def _call(self, fn: Any, *args: object) -> Any:
        try:
            with self._lock:
                return fn(*args)
        except self._nvml.NVMLError as exc:
            code = getattr(exc, "value", None)
            permanent = code in (
                getattr(self._nvml, "NVML_ERROR_NOT_SUPPORTED", 3),
                getattr(self._nvml, "NVML_ERROR_NO_PERMISSION", 4),
                getattr(self._nvml, "NVML_ERROR_INVALID_ARGUMENT", 2),
            )
            raise GpuBackendError(f"NVML {getattr(fn, '__name__', fn)}{args[1:]!r}: {exc}", permanent) from exc

    def _is_not_supported(self, exc: GpuBackendError) -> bool:
        cause = exc.__cause__
        return getattr(cause, "value", None) == getattr(self._nvml, "NVML_ERROR_NOT_SUPPORTED", 3)

    def _handle(self, index: int) -> object:
        if index not in self._handles:
            self._handles[index] = self._call(self._nvml.nvmlDeviceGetHandleByIndex, index)
        return self._handles[index]

    def device_count(self) -> int:
        return int(self._call(self._nvml.nvmlDeviceGetCount))

    def info(self, index: int) -> GpuInfo:
        if index in self._infos:
            return self._infos[index]
        h = self._handle(index)
        min_mw, max_mw = self._call(self._nvml.nvmlDeviceGetPowerManagementLimitConstraints, h)
        default_mw = int(self._call(self._nvml.nvmlDeviceGetPowerManagementDefaultLimit, h))
        info = GpuInfo(
            index=index,
            uuid=_text(self._call(self._nvml.nvmlDeviceGetUUID, h)),
            name=_text(self._call(self._nvml.nvmlDeviceGetName, h)),
            min_limit_mw=int(min_mw),
            max_limit_mw=int(max_mw),
            default_limit_mw=default_mw,
            has_energy_counter=self.total_energy_mj(index) is not None,
        )
        self._infos[index] = info
        return info

    def power_limit_mw(self, index: int) -> int:
        return int(self._call(self._nvml.nvmlDeviceGetPowerManagementLimit, self._handle(index)))

    def set_power_limit_mw(self, index: int, milliwatts: int) -> None:
        check_limit(self.info(index), milliwatts)
        self._call(self._nvml.nvmlDeviceSetPowerManagementLimit, self._handle(index), int(milliwatts))

    def power_usage_mw(self, index: int) -> int:
        return int(self._call(self._nvml.nvmlDeviceGetPowerUsage, self._handle(index)))

    def total_energy_mj(self, index: int) -> int | None:
        if index in self._no_counter:
            return None
        try:
            return int(self._call(self._nvml.nvmlDeviceGetTotalEnergyConsumption, self._handle(index)))
        except GpuBackendError as exc:
            if self._is_not_supported(exc):
                self._no_counter.add(index)
                return None
            raise

    def close(self) -> None:
        with contextlib.suppress(GpuBackendError):  # shutting down anyway: nothing is left to release
            self._call(self._nvml.nvmlShutdown)
