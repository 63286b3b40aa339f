"""Does a built image work? Checked without a kubelet, before the image is recorded as built.

Each image's own entry point runs with `--help` in a buildah working container (chroot isolation, as the image's
USER); the worker also trains gpt-tiny for two steps on the CPU (torch, the launcher, the JSON events), the
operator image's agent interpreter imports the agent as uid 65532, and its planner prices a contended hour with
HiGHS (the capacity prices fall back to none, silently, without it). The operator's archive itself is read back to
prove that /opt/llmasos/bin/python-agent kept its file capabilities (the security.capability xattr travels as a
`SCHILY.xattr` PAX header in its layer tar). The real-pod test lives with the real node (tests/e2e).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from e2e.images.archive import XATTR_CAPS, decode_file_caps, file_pax_headers
from e2e.images.buildah import Buildah

AGENT_INTERPRETER = "/opt/llmasos/bin/python-agent"
AGENT_FILE_CAPS = {"cap_sys_admin", "cap_dac_override"}
# Two GPU-hours due within two hours, at 100 and 300 g/kWh, with one GPU free in the clean hour and two in the other:
# a GPU more in the clean hour is worth 200 g/kWh, one more in the other nothing. Without HiGHS every price is 0,
# silently; this makes an image without it fail to build.
PRICE_PROBE = ("from llmasos.planning.timing.fleet_prices import Work, capacity_prices; "
               "print(capacity_prices([Work(2.0, 1, 0, 2)], [1.0, 2.0], [100.0, 300.0]))")
PRICE_EXPECTED = "[200.0, 0.0]"
TRAIN_ENV = {
    "LLMASOS_TASK": "train", "LLMASOS_JOB_NAME": "image-check", "NNODES": "1", "NPROC_PER_NODE": "1",
    "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533", "LLMASOS_PROGRESS_PORT": "0",
    "LLMASOS_PROGRESS_BIND": "127.0.0.1", "OMP_NUM_THREADS": "1",
    "LLMASOS_TASK_CONFIG": json.dumps({"steps": 2, "batch_size": 2, "log_every": 1, "output_dir": "/tmp/check"}),
}


class ImageCheckError(RuntimeError):
    """A built image failed its smoke check; the message says which command and what came out."""


def _entrypoint(buildah: Buildah, ref: str) -> list[str]:
    entry = buildah.config(ref).get("Entrypoint") or []
    assert isinstance(entry, list)
    return [str(a) for a in entry]


def check_operator(buildah: Buildah, ref: str, archive: Path, log: Path) -> list[str]:
    """Entry point, agent interpreter and its file capabilities in the archive; returns what passed."""
    out = buildah.container_run(ref, [*_entrypoint(buildah, ref), "--help"], log=log)
    if "usage: llmasos" not in out:
        raise ImageCheckError(f"{ref}: `llmasos --help` printed no usage:\n{out[-2000:]}")
    probe = (f"import os, pynvml, llmasos.agent.main; "
             f"print(os.getuid(), os.getxattr('{AGENT_INTERPRETER}', 'security.capability').hex())")
    out = buildah.container_run(ref, [AGENT_INTERPRETER, "-c", probe], log=log)
    if not out.startswith("65532 "):
        raise ImageCheckError(f"{ref}: the agent interpreter did not run as uid 65532: {out!r}")
    headers = file_pax_headers(archive, AGENT_INTERPRETER.lstrip("/"))
    if headers is None or XATTR_CAPS not in headers:
        raise ImageCheckError(f"{archive}: {AGENT_INTERPRETER} has no security.capability xattr "
                              f"(PAX headers: {sorted(headers or {})})")
    caps, effective = decode_file_caps(headers[XATTR_CAPS])
    if caps != AGENT_FILE_CAPS or effective:
        raise ImageCheckError(f"{archive}: {AGENT_INTERPRETER} carries {sorted(caps)} effective={effective}, "
                              f"expected {sorted(AGENT_FILE_CAPS)}=p")
    out = buildah.container_run(ref, ["/opt/llmasos/bin/python", "-c", PRICE_PROBE], log=log).strip()
    if out != PRICE_EXPECTED:
        raise ImageCheckError(f"{ref}: the fleet planner's capacity prices (HiGHS) gave {out!r}, "
                              f"expected {PRICE_EXPECTED}: is highspy installed?")
    return ["llmasos --help", "python-agent imports the agent as uid 65532",
            f"archive keeps {AGENT_INTERPRETER} {','.join(sorted(caps))}=p", "HiGHS prices a contended hour"]


def check_worker(buildah: Buildah, ref: str, log: Path) -> list[str]:
    """Entry point with --help, then two CPU training steps through the real entry point; returns what passed."""
    entry = _entrypoint(buildah, ref)
    out = buildah.container_run(ref, [*entry, "--help"], log=log)
    if "usage: llmasos-worker" not in out:
        raise ImageCheckError(f"{ref}: `llmasos-worker --help` printed no usage:\n{out[-2000:]}")
    out = buildah.container_run(ref, entry, env=TRAIN_ENV, log=log)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    done = [e for e in events if e.get("event") == "done"]
    if not done:
        raise ImageCheckError(f"{ref}: the two-step CPU training run ended without a done event:\n{out[-2000:]}")
    steps = [e for e in events if e.get("event") == "step"]
    return ["llmasos-worker --help", f"trains gpt-tiny on the CPU ({len(steps)} steps, done event)"]


CHECKS: dict[str, Callable[[Buildah, str, Path, Path], list[str]]] = {
    "operator": check_operator,
    "worker": lambda buildah, ref, _archive, log: check_worker(buildah, ref, log),
}
