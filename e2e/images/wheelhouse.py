"""The worker's third-party wheels (torch, the nvidia-* CUDA wheels, Ray: about 3 GB), downloaded once.

Why not pip's HTTP cache: the package index this machine reaches answers without cache headers, so pip stores
nothing there (`~/.cache/llmasos/pip` stays empty) and every cold image build would download 3 GB again. Instead
`pip download` fills one directory, run by the base image's own interpreter and pip (so the wheels match the image's
Python and platform tags exactly), and the worker build mounts it read-only with `--build-arg WHEELHOUSE=...`
(worker_image/Dockerfile then installs with --no-index). The directory is shared across keys: files that are already
there are not downloaded again, and files the current requirements no longer name are deleted afterwards.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path

from e2e.images.buildah import Buildah
from e2e.images.recipe import REPO, worker_requirements

CONSTRAINTS = REPO / "worker_image" / "constraints.txt"
MOUNT = "/wheelhouse"
_SAVED = re.compile(r"^\s*(?:Saved|File was already downloaded)\s+(\S+)\s*$", re.M)


def wheelhouse_key(requirements: list[str], constraints: str, base_ref: str) -> str:
    h = hashlib.sha256("\n".join([*requirements, "--", constraints, "--", base_ref]).encode())
    return h.hexdigest()[:16]


def files_named(pip_output: str, mount: str = MOUNT) -> set[str]:
    """Names of the files pip download saved or found already present (its output lists each once)."""
    return {Path(p).name for p in _SAVED.findall(pip_output) if p.startswith((mount, "./", "/"))}


def ensure_wheelhouse(buildah: Buildah, base_ref: str, root: Path, log: Path, say: Callable[[str], None]) -> Path:
    """Return the wheelhouse directory, complete for the current requirements and pins."""
    requirements = worker_requirements()
    constraints = CONSTRAINTS.read_text()
    key = wheelhouse_key(requirements, constraints, base_ref)
    root.mkdir(parents=True, exist_ok=True)
    stamp = root / f".complete-{key}"
    if stamp.exists():
        return root
    say(f"downloading the worker's wheels into {root} (about 3 GB the first time)")
    started = time.monotonic()
    (root / ".requirements.txt").write_text("\n".join(requirements) + "\n")
    (root / ".constraints.txt").write_text(constraints)
    out = buildah.container_run(
        base_ref,
        ["pip", "download", "--disable-pip-version-check", "--progress-bar", "off", "--dest", MOUNT,
         "--constraint", f"{MOUNT}/.constraints.txt", "--requirement", f"{MOUNT}/.requirements.txt"],
        volumes=[f"{root}:{MOUNT}"], log=log,
    )
    keep = files_named(out)
    if not keep:
        raise RuntimeError(f"pip download named no files; see {log}")
    for f in root.iterdir():
        if f.is_file() and not f.name.startswith(".") and f.name not in keep:
            f.unlink()
    for old in root.glob(".complete-*"):
        old.unlink()
    stamp.touch()
    say(f"wheels ready in {time.monotonic() - started:.0f}s ({len(keep)} files)")
    return root
