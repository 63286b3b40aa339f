"""The base image, made here from Debian packages because no container registry can be reached.

mmdebstrap writes a bookworm root file system with Debian's python3 (3.11) as a tar; buildah turns it into a
one-layer image (`from scratch`, `add`, `config`, `commit`) named by the recipe's key. It stands in for
python:3.11-slim-bookworm: the Dockerfiles need `python`, `pip`, `python -m venv`, `apt-get`, `useradd`.
Differences that remain: Debian's Python (3.11.2, in /usr/bin; pip installs go to /usr/local) instead of the
python.org build in /usr/local, and Debian's pip 23.0.1.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from e2e.images.buildah import Buildah, run_logged
from e2e.images.recipe import BaseRecipe


def mmdebstrap_command(recipe: BaseRecipe, apt_conf: Path, out: Path) -> list[str]:
    """The mmdebstrap command line of the recipe (pure: a list of arguments)."""
    argv = ["mmdebstrap", "--mode=root", f"--variant={recipe.variant}", "--format=tar",
            f"--include={','.join(recipe.packages)}"]
    argv += [f"--dpkgopt={opt}" for opt in recipe.dpkg_options]
    # apt's container settings go into the image only (a hook, not --aptopt: these must not steer the host's apt
    # while mmdebstrap bootstraps).
    argv.append(f"--customize-hook=upload {apt_conf} /etc/apt/apt.conf.d/docker-clean")
    argv.append('--customize-hook=chroot "$1" python -c "import ensurepip, pip, venv"')
    argv += [recipe.suite, str(out), *recipe.sources]
    return argv


def apt_conf_text(recipe: BaseRecipe) -> str:
    """/etc/apt/apt.conf.d/docker-clean: no package caches, no leftover .debs (as in Debian's own images)."""
    clean = ('"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin '
             '|| true";')
    lines = [f"{opt};" for opt in recipe.apt_options]
    lines += [f"DPkg::Post-Invoke {{ {clean} }};", f"APT::Update::Post-Invoke {{ {clean} }};"]
    return "\n".join(lines) + "\n"


def oci_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def ensure_base(buildah: Buildah, recipe: BaseRecipe, work: Path, log: Path,
                say: Callable[[str], None]) -> str:
    """Return the base image's ref, building it into the storage first if it is not there (about a minute)."""
    ref = recipe.ref
    if buildah.image_id(ref):
        return ref
    if shutil.which("mmdebstrap") is None:
        raise FileNotFoundError("mmdebstrap is not installed (make system-deps, or apt-get install mmdebstrap)")
    say(f"building the base image {ref} with mmdebstrap ({recipe.suite}: {' '.join(recipe.packages)})")
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        apt_conf = Path(tmp) / "docker-clean"
        apt_conf.write_text(apt_conf_text(recipe))
        rootfs = Path(tmp) / "rootfs.tar"
        run_logged(mmdebstrap_command(recipe, apt_conf, rootfs), log)
        container = buildah.run("from", "--quiet", "scratch", log=log).strip()
        try:
            buildah.run("add", "--quiet", container, str(rootfs), "/", log=log)
            buildah.run("run", "--isolation", "chroot", container, "--", "sh", "-c", "rm -f " + " ".join(recipe.remove),
                        log=log)
            config = [f"--env={k}={v}" for k, v in recipe.env]
            config += ["--cmd", json.dumps(list(recipe.cmd)), "--os", "linux", "--arch", oci_arch(),
                       "--label", f"io.llmasos.base-recipe={recipe.key()[:16]}"]
            buildah.run("config", *config, container, log=log)
            buildah.run("commit", "--quiet", "--rm", container, ref, log=log)
        except BaseException:
            buildah.run("rm", container)
            raise
    say(f"built the base image in {time.monotonic() - started:.0f}s")
    return ref
