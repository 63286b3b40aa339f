"""The image's privilege mechanism on this kernel, without a container engine: a real copy of a Python interpreter next
to a pyvenv.cfg (as `/opt/llmasos/bin/python-agent` sits in the venv), `setcap cap_sys_admin,cap_dac_override+p`,
run as uid 65532 with `setpriv`. Checked with the agent's own parser and start-up step:

- with the file capabilities, uid 65532 gets CAP_SYS_ADMIN and CAP_DAC_OVERRIDE permitted, `check_privileges`
  makes them effective, and the process can do what needs them: unshare(2) a UTS namespace (a CAP_SYS_ADMIN
  test), connect to a root-owned 0755 socket in a 0750 directory (the kubelet's PodResources layout) and write a
  root-owned 0755 directory (the state hostPath);
- without them (a plain copy), nothing is permitted and both the socket and the directory refuse it;
- a bounding set without SYS_ADMIN (a chart override that drops it) still starts the `+p` interpreter, and the
  start-up message names the cause; the same file with the effective bit (`+ep`) would fail execve with EPERM;
- no_new_privs limits what execve grants to what the caller already had permitted: file capabilities are withheld
  from a process that arrives through an intermediate execve (a shell), kept by one that held them before.

Needs root (setcap, setpriv), util-linux `setpriv` and libcap2-bin `setcap`; skips with the exact reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmasos.agent.capabilities import CAP_DAC_OVERRIDE, CAP_SYS_ADMIN, Need, parse_status, startup_message

OPERATOR_SRC = Path(__file__).resolve().parents[3] / "operator"
UID = 65532
FILE_CAPS = "cap_sys_admin,cap_dac_override+p"
BOTH = 1 << CAP_SYS_ADMIN | 1 << CAP_DAC_OVERRIDE

# Runs inside the capability-carrying interpreter as uid 65532; prints one JSON object.
CHILD = r"""
import ctypes, json, os, socket, sys
sys.path.insert(0, sys.argv[1])
from llmasos.agent.privileges import check_privileges
from pathlib import Path
out = {"prefix": sys.prefix, "before": open("/proc/self/status").read()}
state_dir, sock = Path(sys.argv[2]), Path(sys.argv[3])
out["missing"] = [n.cap for n in check_privileges("nvml", state_dir, sock)]
out["after"] = open("/proc/self/status").read()
out["unshare"] = ctypes.CDLL(None, use_errno=True).unshare(0x04000000) == 0  # CLONE_NEWUTS: needs CAP_SYS_ADMIN
try:
    (state_dir / "state.json").write_text("{}")
    out["write"] = True
except PermissionError:
    out["write"] = False
try:
    s = socket.socket(socket.AF_UNIX); s.connect(str(sock)); s.close()
    out["connect"] = True
except PermissionError:
    out["connect"] = False
print(json.dumps(out))
"""


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        pytest.skip(f"{name} is not installed ({'libcap2-bin' if name == 'setcap' else 'util-linux'})")
    return found


def _as_agent(argv: list[str], *setpriv_opts: str) -> subprocess.CompletedProcess[str]:
    cmd = [_tool("setpriv"), f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *setpriv_opts, "--", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def _interpreters() -> list[Path]:
    """The venv's base interpreter first, then the system's of the same version (uid 65532 must be able to reach
    the one it copies: its standard library, and its libpython when it is linked to one)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    found = [p for p in dict.fromkeys([base, Path("/usr/bin") / version]) if p.exists()]
    return [p for p in found if all(os.stat(d).st_mode & stat.S_IXOTH for d in p.parents)]  # e.g. not under /root


@pytest.fixture(scope="module")
def venv_root() -> Iterator[Path]:
    """A world-readable directory shaped like the image's venv: bin/python-agent (a real copy) and pyvenv.cfg."""
    if sys.platform != "linux":
        pytest.skip("file capabilities are a Linux feature")
    if os.geteuid() != 0:
        pytest.skip("needs root to setcap and to switch to uid 65532")
    _tool("setcap")
    _tool("setpriv")
    root = Path(tempfile.mkdtemp(prefix="llmasos-filecaps-", dir="/tmp"))
    try:
        root.chmod(0o755)
        (root / "bin").mkdir(mode=0o755)
        tried = []
        for interpreter in _interpreters():
            copy = root / "bin" / "python-agent"
            shutil.copy2(interpreter, copy)
            copy.chmod(0o755)
            (root / "pyvenv.cfg").write_text(f"home = {interpreter.parent}\ninclude-system-site-packages = false\n")
            probe = _as_agent([str(copy), "-c", "import sys; print(sys.prefix)"])
            if probe.returncode == 0:
                assert probe.stdout.strip() == str(root), "the copy finds pyvenv.cfg next to bin/, as in the image"
                break
            tried.append(f"{interpreter}: {probe.stderr.strip().splitlines()[-1:] or probe.returncode}")
        else:
            pytest.skip(f"no interpreter that uid {UID} can reach and run: {tried or 'none in world-searchable dirs'}")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _setcap(path: Path, caps: str | None) -> None:
    """Apply (or, for None, remove) file capabilities; skip with the exact error if the filesystem refuses xattrs."""
    args = [_tool("setcap"), caps, str(path)] if caps else [_tool("setcap"), "-r", str(path)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if result.returncode != 0 and caps is None and "No data available" in result.stderr:
        return  # there was nothing to remove
    if result.returncode != 0:
        pytest.skip(f"`{' '.join(args)}` failed: {result.stderr.strip()} (the filesystem refuses security xattrs?)")


@pytest.fixture
def host_paths(venv_root: Path) -> Iterator[tuple[Path, Path]]:
    """Root-owned copies of the agent's host paths: a 0755 state directory (kubelet's DirectoryOrCreate) and a 0755
    socket, listening, in a 0750 directory (the kubelet's pod-resources directory and socket)."""
    base = venv_root / "host"
    base.mkdir(mode=0o755, exist_ok=True)
    state = base / "llmasos-agent"
    state.mkdir(mode=0o755, exist_ok=True)
    (state / "state.json").unlink(missing_ok=True)
    sockdir = base / "pod-resources"
    sockdir.mkdir(mode=0o750, exist_ok=True)
    sockdir.chmod(0o750)
    path = sockdir / "kubelet.sock"
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    path.chmod(0o755)
    server.listen(4)
    try:
        yield state, path
    finally:
        server.close()
        path.unlink(missing_ok=True)


def _run_child(venv_root: Path, host: tuple[Path, Path], *setpriv_opts: str, via_shell: bool = False
               ) -> dict[str, Any]:
    state, sock = host
    argv = [str(venv_root / "bin" / "python-agent"), "-c", CHILD, str(OPERATOR_SRC), str(state), str(sock)]
    if via_shell:
        argv = ["/bin/sh", "-c", 'exec "$0" "$@"', *argv]
    result = _as_agent(argv, *setpriv_opts)
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return out


def test_file_capabilities_make_the_non_root_agent_able(venv_root: Path, host_paths: tuple[Path, Path]) -> None:
    _setcap(venv_root / "bin" / "python-agent", FILE_CAPS)
    out = _run_child(venv_root, host_paths)
    before, after = parse_status(out["before"]), parse_status(out["after"])
    assert before.euid == after.euid == UID
    assert before.permitted == BOTH, "+p: permitted at execve"
    assert before.effective == 0, "+p: not effective until the agent raises it"
    assert after.has(CAP_SYS_ADMIN)
    assert after.has(CAP_DAC_OVERRIDE)
    assert after.effective == BOTH, "nothing beyond what the file grants"
    assert out["missing"] == []
    assert out["unshare"]
    assert out["write"]
    assert out["connect"]
    assert out["prefix"] == str(venv_root)


def test_without_file_capabilities_nothing_is_granted(venv_root: Path, host_paths: tuple[Path, Path]) -> None:
    _setcap(venv_root / "bin" / "python-agent", None)
    out = _run_child(venv_root, host_paths)
    after = parse_status(out["after"])
    assert after.euid == UID
    assert after.permitted == 0
    assert after.effective == 0
    assert sorted(out["missing"]) == [CAP_DAC_OVERRIDE, CAP_SYS_ADMIN]
    assert not out["unshare"]
    assert not out["write"]
    assert not out["connect"]


def test_a_bounding_set_without_sys_admin_starts_and_says_why(venv_root: Path,
                                                              host_paths: tuple[Path, Path]) -> None:
    _setcap(venv_root / "bin" / "python-agent", FILE_CAPS)
    out = _run_child(venv_root, host_paths, "--bounding-set=-sys_admin")
    after = parse_status(out["after"])
    assert out["missing"] == [CAP_SYS_ADMIN]
    assert after.has(CAP_DAC_OVERRIDE)
    assert not after.has(CAP_SYS_ADMIN)
    message = startup_message(after, [Need(CAP_SYS_ADMIN, "set GPU power limits")])
    assert message is not None
    assert "not in the bounding set: add SYS_ADMIN" in message


def test_the_effective_bit_would_turn_that_into_an_exec_failure(venv_root: Path) -> None:
    """Why the image uses `+p` and raises the capabilities itself: `+ep` with a capability outside the bounding set
    makes execve fail with EPERM (capabilities(7), "safety checking for capability-dumb binaries")."""
    copy = venv_root / "bin" / "python-agent"
    _setcap(copy, "cap_sys_admin,cap_dac_override+ep")
    try:
        result = _as_agent([str(copy), "-c", "pass"], "--bounding-set=-sys_admin")
        assert result.returncode != 0
        assert "Operation not permitted" in result.stderr
        assert _as_agent([str(copy), "-c", "pass"]).returncode == 0  # with the full bounding set it starts
    finally:
        _setcap(copy, FILE_CAPS)


def test_no_new_privs_withholds_file_capabilities_the_caller_did_not_hold(venv_root: Path,
                                                                          host_paths: tuple[Path, Path]) -> None:
    """no_new_privs caps what execve grants at what the caller already had permitted. Through a shell (whose own
    execve as uid 65532 left it nothing), the file capabilities are withheld."""
    _setcap(venv_root / "bin" / "python-agent", FILE_CAPS)
    out = _run_child(venv_root, host_paths, "--no-new-privs", via_shell=True)
    after = parse_status(out["after"])
    assert after.no_new_privs
    assert after.permitted == 0
    assert sorted(out["missing"]) == [CAP_DAC_OVERRIDE, CAP_SYS_ADMIN]


def test_no_new_privs_keeps_what_the_caller_held(venv_root: Path, host_paths: tuple[Path, Path]) -> None:
    """setpriv keeps its permitted set across the uid switch (as a container runtime does before it executes the
    entry point), so the same file capabilities survive no_new_privs when executed directly. Kubernetes rejects
    allowPrivilegeEscalation: false together with SYS_ADMIN anyway; the chart leaves it unset."""
    _setcap(venv_root / "bin" / "python-agent", FILE_CAPS)
    out = _run_child(venv_root, host_paths, "--no-new-privs")
    after = parse_status(out["after"])
    assert after.no_new_privs
    assert after.effective == BOTH
    assert out["missing"] == []
