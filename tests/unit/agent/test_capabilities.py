"""The capability parser and the start-up decision: /proc/self/status masks, what the agent needs, the message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmasos.agent.capabilities import (
    CAP_DAC_OVERRIDE,
    CAP_SYS_ADMIN,
    Need,
    ProcessCapabilities,
    cap_names,
    is_writable_by,
    missing_capabilities,
    needed_capabilities,
    parse_status,
    startup_message,
)
from llmasos.agent.privileges import read_capabilities, unwritable_paths

# The agent container as the chart runs it (uid 65532, bounding = SYS_ADMIN + DAC_OVERRIDE), after execve of
# python-agent with cap_sys_admin,cap_dac_override+p and before the agent raised them. Trimmed from a real file
# (Linux 6.18); the tabs and the lines around the capability lines are as the kernel writes them.
AGENT_STATUS = """\
Name:\tpython-agent
Umask:\t0022
State:\tS (sleeping)
Tgid:\t1
Pid:\t1
PPid:\t0
TracerPid:\t0
Uid:\t65532\t65532\t65532\t65532
Gid:\t65532\t65532\t65532\t65532
FDSize:\t64
Groups:\t65532 \n\
Threads:\t1
SigQ:\t0/96365
SigBlk:\t0000000000000000
CapInh:\t0000000000000000
CapPrm:\t0000000000200002
CapEff:\t0000000000000000
CapBnd:\t0000000000200002
CapAmb:\t0000000000000000
NoNewPrivs:\t0
Seccomp:\t2
Seccomp_filters:\t1
Cpus_allowed_list:\t0-1
"""

SYS_ADMIN = 1 << CAP_SYS_ADMIN
DAC = 1 << CAP_DAC_OVERRIDE
NEEDS = (Need(CAP_SYS_ADMIN, "set GPU power limits"), Need(CAP_DAC_OVERRIDE, "write the state"))


def test_parses_the_real_format() -> None:
    caps = parse_status(AGENT_STATUS)
    assert caps == ProcessCapabilities(effective=0, permitted=SYS_ADMIN | DAC, bounding=SYS_ADMIN | DAC,
                                       inheritable=0, ambient=0, no_new_privs=False, euid=65532)
    assert not caps.has(CAP_SYS_ADMIN)
    assert cap_names(caps.permitted) == ("CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN")


def test_parses_this_process() -> None:
    """Whatever this machine is, its own status file parses, and the euid matches."""
    caps = read_capabilities()
    if caps is None:
        pytest.skip("no /proc/self/status (not Linux)")
    assert caps.euid == os.geteuid()
    assert caps.effective & ~caps.permitted == 0  # the kernel keeps effective within permitted


@pytest.mark.parametrize(
    ("masks", "names"),
    [
        ("0000000000000000", ()),
        ("0000000000200000", ("CAP_SYS_ADMIN",)),
        ("0000000000200002", ("CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN")),
        ("00000000a80425fb", ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                              "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW",
                              "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP")),  # a runtime default
        ("000001ffffffffff", None),  # every capability of Linux 5.9+ (41)
    ],
)
def test_masks(masks: str, names: tuple[str, ...] | None) -> None:
    caps = parse_status(AGENT_STATUS.replace("CapEff:\t0000000000000000", f"CapEff:\t{masks}"))
    if names is None:
        assert len(cap_names(caps.effective)) == 41
        assert caps.has(CAP_SYS_ADMIN)
    else:
        assert cap_names(caps.effective) == names
        assert caps.has(CAP_SYS_ADMIN) == ("CAP_SYS_ADMIN" in names)


def test_old_kernels_without_ambient_or_no_new_privs_lines() -> None:
    text = "\n".join(line for line in AGENT_STATUS.splitlines() if not line.startswith(("CapAmb", "NoNewPrivs")))
    caps = parse_status(text)
    assert caps.ambient == 0
    assert caps.no_new_privs is False


@pytest.mark.parametrize("broken", ["CapEff:\tzz", "CapEff:\t"])
def test_malformed_mask_is_an_error(broken: str) -> None:
    with pytest.raises(ValueError, match="CapEff"):
        parse_status(AGENT_STATUS.replace("CapEff:\t0000000000000000", broken))


def test_missing_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="CapBnd"):
        parse_status(AGENT_STATUS.replace("CapBnd", "Nope"))


def test_what_the_agent_needs() -> None:
    assert needed_capabilities("sim", 65532) == ()
    assert needed_capabilities("sim", 0, ["/var/lib/llmasos-agent"]) == ()  # root owns the hostPaths
    assert [n.cap for n in needed_capabilities("nvml", 0)] == [CAP_SYS_ADMIN]
    (sys_admin, dac) = needed_capabilities("nvml", 65532, ["/var/lib/llmasos-agent"])
    assert (sys_admin.cap, dac.cap) == (CAP_SYS_ADMIN, CAP_DAC_OVERRIDE)
    assert "/var/lib/llmasos-agent" in dac.why
    assert "65532" in dac.why


@pytest.mark.parametrize(
    ("mode", "owner", "group", "uid", "gids", "writable"),
    [
        (0o755, 0, 0, 65532, (65532,), False),  # kubelet's DirectoryOrCreate hostPath
        (0o755, 0, 0, 0, (0,), True),
        (0o755, 65532, 0, 65532, (), True),
        (0o775, 0, 65532, 65532, (65532,), True),
        (0o757, 0, 0, 65532, (), True),
        (0o570, 65532, 65532, 65532, (65532,), False),  # the owner class decides, even when group could write
    ],
)
def test_write_permission_by_mode(mode: int, owner: int, group: int, uid: int, gids: tuple[int, ...],
                                  writable: bool) -> None:
    assert is_writable_by(mode, owner, group, uid, gids) is writable


def test_nothing_missing_means_no_message() -> None:
    caps = ProcessCapabilities(effective=SYS_ADMIN | DAC, permitted=SYS_ADMIN | DAC, bounding=SYS_ADMIN | DAC,
                               euid=65532)
    assert missing_capabilities(caps, NEEDS) == ()
    assert startup_message(caps, ()) is None


@pytest.mark.parametrize(
    ("caps", "cause"),
    [
        (ProcessCapabilities(bounding=DAC, permitted=DAC, effective=DAC, euid=65532),
         "not in the bounding set: add SYS_ADMIN"),
        (ProcessCapabilities(bounding=SYS_ADMIN | DAC, no_new_privs=True, euid=65532), "no_new_privs"),
        (ProcessCapabilities(bounding=SYS_ADMIN | DAC, euid=65532), "python-agent"),
        (ProcessCapabilities(bounding=SYS_ADMIN | DAC, permitted=SYS_ADMIN | DAC, euid=65532),
         "permitted but not effective"),
        (ProcessCapabilities(bounding=SYS_ADMIN, euid=0), "not granted"),
    ],
)
def test_message_names_the_cause(caps: ProcessCapabilities, cause: str) -> None:
    missing = missing_capabilities(caps, NEEDS[:1])
    message = startup_message(caps, missing)
    assert message is not None
    assert "CAP_SYS_ADMIN (needed to set GPU power limits) not effective: " in message
    assert cause in message
    assert "power limits cannot be set" in message
    assert f"uid {caps.euid}" in message


def test_unwritable_paths_as_this_user(tmp_path: Path) -> None:
    """Missing directories are judged by their first existing ancestor; a missing socket needs nothing."""
    state = tmp_path / "a" / "b"
    assert unwritable_paths(state, tmp_path / "kubelet.sock") == []
    tmp_path.chmod(0o555)  # the owner class (this user, root included) has no write bit: judged by mode alone
    try:
        assert unwritable_paths(state, None) == [str(tmp_path)]
    finally:
        tmp_path.chmod(0o755)


def test_check_logs_one_warning_and_does_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The nvml backend without CAP_SYS_ADMIN (here: not in the bounding set): one warning, the missing need back."""
    from llmasos.agent import privileges

    no_sys_admin = ProcessCapabilities(bounding=DAC, permitted=DAC, effective=DAC, euid=65532)
    monkeypatch.setattr(privileges, "read_capabilities", lambda: no_sys_admin)
    with caplog.at_level("INFO", logger="llmasos.agent"):
        missing = privileges.check_privileges("nvml", tmp_path, None)
    assert [n.cap for n in missing] == [CAP_SYS_ADMIN]
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert ("CAP_SYS_ADMIN (needed to set GPU power limits with nvmlDeviceSetPowerManagementLimit) not effective: "
            "not in the bounding set: add SYS_ADMIN") in record.getMessage()
    caplog.clear()
    assert privileges.check_privileges("sim", tmp_path, None) == ()
    assert not caplog.records  # the simulated backend needs nothing
