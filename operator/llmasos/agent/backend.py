"""The one interface every GPU backend implements, so the control loop runs the same on NVML and on the simulator.

Units follow NVML: limits and power in milliwatts, energy in millijoules, so no backend converts twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llmasos.agent.power_policy import GpuLimits
from llmasos.errors import LLMasOSError


class GpuBackendError(LLMasOSError):
    """A GPU call failed; `permanent` is True when retrying cannot help (not supported, no permission)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class GpuInfo:
    """Static facts about one GPU, read once at start-up."""

    index: int
    uuid: str
    name: str
    min_limit_mw: int
    max_limit_mw: int
    default_limit_mw: int
    has_energy_counter: bool

    @property
    def limits(self) -> GpuLimits:
        return GpuLimits(
            min_w=self.min_limit_mw / 1000, max_w=self.max_limit_mw / 1000, default_w=self.default_limit_mw / 1000
        )


class GpuBackend(Protocol):
    """What the agent needs from a GPU library. Methods may raise GpuBackendError."""

    def device_count(self) -> int: ...

    def info(self, index: int) -> GpuInfo: ...

    def power_limit_mw(self, index: int) -> int:
        """The limit in force now (NVML's power management limit)."""
        ...

    def set_power_limit_mw(self, index: int, milliwatts: int) -> None:
        """Set the limit; callers clamp to [min, max] first, backends reject values outside it."""
        ...

    def power_usage_mw(self, index: int) -> int: ...

    def total_energy_mj(self, index: int) -> int | None:
        """The GPU's energy counter since driver load, or None where the GPU has none (pre-Volta)."""
        ...

    def close(self) -> None: ...


def check_limit(info: GpuInfo, milliwatts: int) -> None:
    """Raise the same error NVML would (INVALID_ARGUMENT) for a limit outside the GPU's constraints."""
    if not info.min_limit_mw <= milliwatts <= info.max_limit_mw:
        raise GpuBackendError(
            f"GPU {info.index}: power limit {milliwatts} mW outside [{info.min_limit_mw}, {info.max_limit_mw}] mW",
            permanent=True,
        )
