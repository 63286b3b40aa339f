"""The agent's start-up step for privileges: make the capabilities it needs effective; say once what is missing.

The image gives `/opt/llmasos/bin/python-agent` the file capabilities `cap_sys_admin,cap_dac_override+p`: permitted,
not effective. The kernel therefore never refuses to start it (a file with the effective bit whose permitted
capabilities are not all in the bounding set fails execve with EPERM, a crash loop with no message), and the agent
turns on only the capabilities this configuration needs (`capabilities.needed_capabilities`), before any thread
starts: capabilities are per thread, and threads created later inherit them.

A missing capability is logged, never raised: without CAP_SYS_ADMIN the agent still meters and reports energy.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from llmasos.agent.capabilities import (
    Need,
    ProcessCapabilities,
    cap_name,
    is_writable_by,
    missing_capabilities,
    needed_capabilities,
    parse_status,
    startup_message,
)

log = logging.getLogger("llmasos.agent")
PROC_STATUS = Path("/proc/self/status")
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def read_capabilities(path: Path = PROC_STATUS) -> ProcessCapabilities | None:
    """This process's capability sets, or None where there is no /proc (not Linux)."""
    try:
        return parse_status(path.read_text())
    except FileNotFoundError:
        return None


def raise_effective(caps: Iterable[int]) -> None:
    """Add `caps` (each must be permitted) to this thread's effective set with capget/capset(2)."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), f"capget: {os.strerror(ctypes.get_errno())}")
    for cap in caps:
        data[cap // 32].effective |= 1 << (cap % 32)
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), f"capset: {os.strerror(ctypes.get_errno())}")


def _denies_write(path: Path, uid: int, gids: tuple[int, ...]) -> bool:
    st = os.stat(path)
    return not is_writable_by(st.st_mode, st.st_uid, st.st_gid, uid, gids)


def unwritable_paths(state_dir: Path, socket: Path | None) -> list[str]:
    """The paths the agent must write (the state directory, or its first existing ancestor) or connect to (the
    PodResources socket, when it exists) that this process's uid and groups cannot, by mode alone."""
    uid, gids = os.geteuid(), (os.getegid(), *os.getgroups())
    out: list[str] = []
    for candidate in (state_dir, *state_dir.parents):
        try:
            if _denies_write(candidate, uid, gids):
                out.append(str(candidate))
            break
        except FileNotFoundError:
            continue  # created by the first save: its parent must be writable
        except PermissionError:  # a directory above it denies search
            out.append(str(candidate))
            break
    if socket is not None:
        try:
            if _denies_write(socket, uid, gids):
                out.append(str(socket))
        except FileNotFoundError:
            pass  # no socket: `auto` mapping uses the fallback
        except PermissionError:  # the kubelet's pod-resources directory is 0750 root
            out.append(str(socket))
    return out


def check_privileges(gpu_backend: str, state_dir: Path, socket: Path | None) -> tuple[Need, ...]:
    """Make the needed capabilities effective where they are permitted; log one warning naming what is still
    missing. Returns the missing needs (empty when all is well, or when there is no /proc to read)."""
    before = read_capabilities()
    if before is None:
        return ()
    needs = needed_capabilities(gpu_backend, before.euid, unwritable_paths(state_dir, socket))
    wanted = [n.cap for n in needs if before.permitted >> n.cap & 1 and not before.has(n.cap)]
    if wanted:
        try:
            raise_effective(wanted)
        except OSError as exc:  # the message below names the capabilities that stayed off
            log.warning("could not raise capabilities %s: %s", wanted, exc)
    after = read_capabilities() or before
    missing = missing_capabilities(after, needs)
    message = startup_message(after, missing)
    if message is not None:
        log.warning("%s", message)
    elif needs:
        log.info("capabilities in effect: %s", "; ".join(f"{cap_name(n.cap)} to {n.why}" for n in needs))
    return missing

