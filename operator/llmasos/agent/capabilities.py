"""Which Linux capabilities the node agent needs, which it has, and one message naming what is missing and why.

The agent runs as uid 65532. It gets its two capabilities from the file capabilities of the image's
`/opt/llmasos/bin/python-agent` (`cap_sys_admin,cap_dac_override+p`), not from uid 0: Kubernetes puts a container's
added capabilities in the bounding set only, and a non-root process gets none of them at execve without file (or
ambient) capabilities. This module is pure: it reads the text of `/proc/self/status` and plain numbers from stat;
the adapter in `privileges` does the reading and raises the permitted set into the effective one.

- CAP_SYS_ADMIN: `nvmlDeviceSetPowerManagementLimit` is an administrator call; the NVIDIA kernel module tests
  `capable(CAP_SYS_ADMIN)`. The simulated backend needs nothing.
- CAP_DAC_OVERRIDE: as a non-root user, connecting to the kubelet's PodResources socket (root-owned, in a 0750
  directory; connect(2) needs write permission on the socket) and writing the state hostPath (created by kubelet as
  root, 0755). Needed only where such a path is not writable by the agent's own uid and groups.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CAP_DAC_OVERRIDE = 1
CAP_SYS_ADMIN = 21

# capability(7) numbers; names as the kernel headers spell them.
CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
AGENT_INTERPRETER = "/opt/llmasos/bin/python-agent"


def cap_name(cap: int) -> str:
    return CAP_NAMES[cap] if 0 <= cap < len(CAP_NAMES) else f"CAP_{cap}"


def cap_names(mask: int) -> tuple[str, ...]:
    """The names of the bits set in a capability mask, lowest first."""
    return tuple(cap_name(i) for i in range(mask.bit_length()) if mask >> i & 1)


@dataclass(frozen=True)
class ProcessCapabilities:
    """The capability sets of one thread, as /proc/<pid>/status shows them (masks), and its effective uid."""

    effective: int = 0
    permitted: int = 0
    bounding: int = 0
    inheritable: int = 0
    ambient: int = 0
    no_new_privs: bool = False
    euid: int = 0

    def has(self, cap: int) -> bool:
        """True when `cap` is effective, i.e. the kernel's capable() test passes for it."""
        return bool(self.effective >> cap & 1)


def parse_status(text: str) -> ProcessCapabilities:
    """Read CapInh/CapPrm/CapEff/CapBnd/CapAmb (hex masks), NoNewPrivs and Uid (real, effective, ...) from the text of
    /proc/self/status. Raises ValueError when a capability line is missing or malformed."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()

    def mask(key: str, required: bool = True) -> int:
        if key not in fields:
            if required:
                raise ValueError(f"/proc status has no {key} line")
            return 0
        try:
            return int(fields[key], 16)
        except ValueError:
            raise ValueError(f"/proc status {key} is not a hex mask: {fields[key]!r}") from None

    uids = fields.get("Uid", "").split()
    return ProcessCapabilities(
        effective=mask("CapEff"),
        permitted=mask("CapPrm"),
        bounding=mask("CapBnd"),
        inheritable=mask("CapInh", required=False),
        ambient=mask("CapAmb", required=False),  # since Linux 4.3
        no_new_privs=fields.get("NoNewPrivs", "0") == "1",  # since Linux 4.10
        euid=int(uids[1]) if len(uids) > 1 else 0,
    )


@dataclass(frozen=True)
class Need:
    """A capability the agent needs here, and what for."""

    cap: int
    why: str


def is_writable_by(mode: int, owner: int, group: int, uid: int, gids: Iterable[int]) -> bool:
    """The classic owner/group/other write test (no capability, no ACL): would `uid` with `gids` pass it?"""
    if uid == owner:
        return bool(mode & stat.S_IWUSR)
    if group in set(gids):
        return bool(mode & stat.S_IWGRP)
    return bool(mode & stat.S_IWOTH)


def needed_capabilities(gpu_backend: str, euid: int, unwritable: Sequence[str] = ()) -> tuple[Need, ...]:
    """What this agent needs: CAP_SYS_ADMIN for the NVML backend (power limits), CAP_DAC_OVERRIDE when it is not
    root and some path it must write or connect to (`unwritable`) denies its uid by mode."""
    needs: list[Need] = []
    if gpu_backend == "nvml":
        needs.append(Need(CAP_SYS_ADMIN, "set GPU power limits with nvmlDeviceSetPowerManagementLimit"))
    if euid != 0 and unwritable:
        needs.append(Need(CAP_DAC_OVERRIDE, f"write or connect to {', '.join(unwritable)} as uid {euid}"))
    return tuple(needs)


def missing_capabilities(caps: ProcessCapabilities, needs: Iterable[Need]) -> tuple[Need, ...]:
    return tuple(n for n in needs if not caps.has(n.cap))


def _diagnosis(caps: ProcessCapabilities, cap: int) -> str:
    """Why a needed capability is not effective, from the most to the least specific cause."""
    if caps.permitted >> cap & 1:
        return "permitted but not effective (raising it failed)"
    if not caps.bounding >> cap & 1:
        return (f"not in the bounding set: add {cap_name(cap).removeprefix('CAP_')} to the container's "
                "securityContext.capabilities.add")
    if caps.euid != 0 and caps.no_new_privs:
        return ("no_new_privs is set (allowPrivilegeEscalation: false), so the interpreter's file capabilities were "
                "not granted")
    if caps.euid != 0:
        return (f"a non-root process gets added capabilities only from file capabilities: run the agent with "
                f"{AGENT_INTERPRETER} -m llmasos.cli node-agent (the chart does), on a filesystem that keeps xattrs")
    return "not granted to this container"


def startup_message(caps: ProcessCapabilities, missing: Sequence[Need]) -> str | None:
    """One log line for what is missing (None when nothing is), with the consequence and the likely fix."""
    if not missing:
        return None
    by_cause: dict[str, list[Need]] = {}
    for n in missing:
        by_cause.setdefault(_diagnosis(caps, n.cap), []).append(n)
    parts = [" and ".join(f"{cap_name(n.cap)} (needed to {n.why})" for n in needs) + f" not effective: {cause}"
             for cause, needs in by_cause.items()]
    if any(n.cap == CAP_SYS_ADMIN for n in missing):
        parts.append("power limits cannot be set: the agent keeps metering and reporting energy, and every cap it "
                     "tries is counted as a cap error")
    effective = ",".join(cap_names(caps.effective)) or "none"
    return f"uid {caps.euid}, effective capabilities {effective}: " + "; ".join(parts)
