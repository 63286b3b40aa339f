"""buildah, daemonless, with the project's own container storage under the image cache.

Why these settings: `--isolation chroot` runs RUN steps without runc or user namespaces (Debian's runc 1.1.5 fails
on this machine kind), so network and DNS are the host's; the overlay driver shares layers between images and
build steps (vfs would copy the whole root file system for each step: gigabytes per worker step). Set
LLMASOS_BUILDAH_DRIVER=vfs where the cache directory cannot host overlay mounts (for example on overlayfs itself).
The storage lives under the image cache, so `--layers` reuses the worker's large dependency layer when only the
sources change. Needs root (as the real node does).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The host's CA bundle, bind-mounted read-only over the image's during RUN steps only: where egress passes a
# TLS-inspecting proxy, its CA is in the host's bundle and nowhere else. Nothing of it reaches a layer.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class BuildahError(RuntimeError):
    """A buildah (or mmdebstrap) command failed; the message carries the command and the end of its output."""


@dataclass(frozen=True)
class Buildah:
    root: Path      # container storage (layers, images)
    runroot: Path   # its run-time state (locks, mount bookkeeping)
    driver: str = os.environ.get("LLMASOS_BUILDAH_DRIVER", "overlay")

    def command(self, *args: str) -> list[str]:
        return ["buildah", "--root", str(self.root), "--runroot", str(self.runroot),
                "--storage-driver", self.driver, *args]

    def run(self, *args: str, log: Path | None = None) -> str:
        """Run one buildah command; its stdout is returned (and appended to `log` with stderr, when given)."""
        return run_logged(self.command(*args), log)

    def image_id(self, ref: str) -> str | None:
        result = subprocess.run(self.command("inspect", "--type", "image", "--format", "{{.FromImageID}}", ref),
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            return None
        return result.stdout.strip() or None

    def config(self, ref: str) -> dict[str, object]:
        """The image's OCI config section (Entrypoint, Cmd, Env, User, ...)."""
        raw = json.loads(self.run("inspect", "--type", "image", ref))
        config: dict[str, object] = raw["OCIv1"]["config"]
        return config

    def bud(self, dockerfile: Path, context: Path, tags: Sequence[str], build_args: dict[str, str],
            volumes: Sequence[str], log: Path) -> None:
        args = ["bud", "--isolation", "chroot", "--network", "host", "--pull=never", "--layers", "--format", "oci",
                "-f", str(dockerfile)]
        for tag in tags:
            args += ["-t", tag]
        for name, value in sorted(build_args.items()):
            args += ["--build-arg", f"{name}={value}"]
        for volume in [*ca_volume(), *volumes]:
            args += ["-v", volume]
        self.run(*args, str(context), log=log)

    def container_run(self, ref: str, argv: Sequence[str], env: dict[str, str] | None = None,
                      volumes: Sequence[str] = (), log: Path | None = None) -> str:
        """Run `argv` in a fresh working container of `ref` (as the image's USER), then remove the container."""
        container = self.run("from", "--pull=never", "--quiet", ref).strip()
        try:
            extra = [f"--env={k}={v}" for k, v in sorted((env or {}).items())]
            extra += [f"--volume={v}" for v in [*ca_volume(), *volumes]]
            return self.run("run", "--isolation", "chroot", *extra, container, "--", *argv, log=log)
        finally:
            self.run("rm", container)

    def images(self) -> list[dict[str, object]]:
        """Every image in the storage, intermediate ones included, as storage records (id, names, top layer)."""
        path = self.root / f"{self.driver}-images" / "images.json"
        return list(json.loads(path.read_text())) if path.exists() else []

    def layers(self) -> dict[str, dict[str, object]]:
        path = self.root / f"{self.driver}-layers" / "layers.json"
        return {str(layer["id"]): layer for layer in json.loads(path.read_text())} if path.exists() else {}

    def unpacked_bytes(self, ref: str) -> int:
        """Sum of the uncompressed sizes of the image's layers (what it takes once unpacked)."""
        image_id = self.image_id(ref)
        by_id = {str(i["id"]): i for i in self.images()}
        layers = self.layers()
        if image_id not in by_id:
            return 0
        return sum(int(str(layers[lid].get("diff-size", 0))) for lid in self.layer_chain(str(by_id[image_id]["layer"])))

    def layer_chain(self, top: str) -> list[str]:
        layers = self.layers()
        chain: list[str] = []
        current: str | None = top
        while current and current in layers:
            chain.append(current)
            parent = layers[current].get("parent")
            current = str(parent) if parent else None
        return chain

    def prune(self, keep: Iterable[str]) -> int:
        """Remove working containers and every image not on the layer chain of a kept ref (so the build cache of the
        kept images survives, and everything older goes). Returns how many images were removed."""
        self.run("rm", "--all")
        kept_layers: set[str] = set()
        by_id = {str(i["id"]): i for i in self.images()}
        for ref in keep:
            image_id = self.image_id(ref)
            if image_id in by_id:
                kept_layers.update(self.layer_chain(str(by_id[image_id]["layer"])))
        doomed = [i for i, rec in by_id.items() if str(rec.get("layer", "")) not in kept_layers]
        for image_id in doomed:  # children first would be nicer; --force copes with either order
            subprocess.run(self.command("rmi", "--force", image_id), capture_output=True, check=False)
        return len(doomed)


def ca_volume() -> list[str]:
    return [f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"] if HOST_CA_BUNDLE.is_file() else []



def run_logged(argv: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure raise BuildahError with the command and the last lines of its output."""
    if log is None:
        result = subprocess.run(list(argv), capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            raise BuildahError(f"{' '.join(argv)} failed (exit {result.returncode}):\n{tail(result.stderr)}")
        return result.stdout
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=out, text=True, check=False, env=env)
        out.write(result.stdout)
    if result.returncode != 0:
        raise BuildahError(f"{' '.join(argv[:6])} ... failed (exit {result.returncode}); log {log}:\n"
                           f"{tail(log.read_text(errors='replace'))}")
    return result.stdout


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
