"""Build the operator and worker images once per input hash, and find them again in seconds.

A built image is a record `<name>-<key16>.json` beside its archive `<name>-<key16>.oci.tar` in the image cache
(`$LLMASOS_CACHE_DIR/images`, default `~/.cache/llmasos/images`). The record is written last, after the smoke check
passed, so its presence means the archive is complete and works; while the key holds nothing is rebuilt. A lock file
serialises builders (two `make images`, or a test session and a cluster start).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from e2e.images.archive import write_archive
from e2e.images.base import ensure_base
from e2e.images.buildah import Buildah
from e2e.images.check import CHECKS
from e2e.images.recipe import REPO, STABLE_TAG, ImageSpec, image_key, image_specs
from e2e.images.wheelhouse import MOUNT, ensure_wheelhouse
from llmasos.commands.progress import progress_enabled

IMAGE_NAMES = ("operator", "worker")
Say = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    """One image in the cache: import `archive` with `ctr -n k8s.io images import`; pods name `ref` (or
    `stable_ref`) with imagePullPolicy IfNotPresent or Never."""

    name: str             # "operator" or "worker"
    ref: str              # localhost/llmasos/<name>:<key16>, changes with every input
    stable_ref: str       # localhost/llmasos/<name>:dev, the same image under a name that does not change
    archive: Path         # OCI image layout in a tar, naming both refs
    archive_bytes: int    # compressed (gzip layers), as imported
    unpacked_bytes: int   # the layers' uncompressed size, as unpacked on a node
    key: str              # sha256 of the inputs (e2e/images/recipe.py)
    build_seconds: float  # build, push, archive and check, when it was built
    checks: tuple[str, ...] = ()
    built_now: bool = False  # built by this call (False: found in the cache)


def cache_dir() -> Path:
    return Path(os.environ.get("LLMASOS_CACHE_DIR", Path.home() / ".cache" / "llmasos")) / "images"


def full_torch_default() -> bool:
    return os.environ.get("LLMASOS_IMAGES_FULL_TORCH", "0") not in ("", "0")


def stage_say(stream: TextIO | None = None, env: Mapping[str, str] | None = None,
              clock: Callable[[], float] = time.monotonic) -> Say:
    """The stage lines of a build (base image, wheels, each image, its check): on a terminal outside CI numbered
    with the time since the build began (`[images 3 +01:12] building ...`), so a several-minute cold build shows
    where it is; elsewhere (CI, a log file) the plain `[images] ...` lines."""
    out = sys.stderr if stream is None else stream
    if not progress_enabled(out, env):
        return lambda message: print(f"[images] {message}", file=out, flush=True)
    started, count = clock(), [0]

    def say(message: str) -> None:
        count[0] += 1
        elapsed = int(clock() - started)
        print(f"[images {count[0]} +{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=out, flush=True)

    return say


def _paths(cache: Path, name: str, key: str) -> tuple[Path, Path]:
    stem = f"{name}-{key[:16]}"
    return cache / f"{stem}.json", cache / f"{stem}.oci.tar"


def _load(cache: Path, spec: ImageSpec, key: str) -> BuiltImage | None:
    record, archive = _paths(cache, spec.name, key)
    if not (record.is_file() and archive.is_file()):
        return None
    try:
        data = json.loads(record.read_text())
        data.update(archive=archive, checks=tuple(data.get("checks", ())), built_now=False)
        return BuiltImage(**data)
    except (ValueError, TypeError):  # a record of another layout (older code): build again
        return None


def cached_images(names: Sequence[str] = IMAGE_NAMES, *, full_torch: bool | None = None) -> list[BuiltImage]:
    """The images whose current key is already built (no building, no buildah): empty where none is."""
    specs = image_specs(full_torch_default() if full_torch is None else full_torch)
    found = [_load(cache_dir(), specs[n], image_key(specs[n])) for n in names]
    return [image for image in found if image is not None]


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_images(names: Sequence[str] = IMAGE_NAMES, *, full_torch: bool | None = None,
                  say: Say | None = None) -> list[BuiltImage]:
    """Return the named images, building those whose inputs changed since they were last built.

    A cold build (base image, 3 GB of worker wheels, both images) takes several minutes; a warm call only hashes
    the inputs. `full_torch` (default: LLMASOS_IMAGES_FULL_TORCH) keeps triton in the worker image.
    """
    say = stage_say() if say is None else say
    unknown = set(names) - set(IMAGE_NAMES)
    if unknown:
        raise ValueError(f"unknown image(s) {sorted(unknown)}; known: {', '.join(IMAGE_NAMES)}")
    specs = image_specs(full_torch_default() if full_torch is None else full_torch)
    keys = {name: image_key(spec) for name, spec in specs.items()}
    cache = cache_dir()
    found = {n: _load(cache, specs[n], keys[n]) for n in names}
    if all(found.values()):
        return [image for image in found.values() if image is not None]
    with _locked(cache):
        buildah = Buildah(cache / "buildah", cache / "buildah-run")
        base = specs["operator"].base
        base_ref = ensure_base(buildah, base, cache / "tmp", cache / "logs" / f"base-{base.key()[:16]}.log", say)
        for name in names:
            found[name] = _load(cache, specs[name], keys[name]) or _build(buildah, specs[name], keys[name],
                                                                          base_ref, cache, say)
        keep = [base_ref, *(f"{s.repo_name()}:{keys[n][:16]}" for n, s in specs.items())]
        removed = buildah.prune(keep)
        if removed:
            say(f"pruned {removed} old image(s) and build-cache entries from {buildah.root}")
    return [image for image in found.values() if image is not None]


def _build(buildah: Buildah, spec: ImageSpec, key: str, base_ref: str, cache: Path, say: Say) -> BuiltImage:
    tag = key[:16]
    ref, stable = f"{spec.repo_name()}:{tag}", f"{spec.repo_name()}:{STABLE_TAG}"
    log = cache / "logs" / f"{spec.name}-{tag}.log"
    log.unlink(missing_ok=True)
    args = {"BASE": base_ref, **dict(spec.build_args)}
    volumes: list[str] = []
    if spec.wheelhouse:
        wheels = ensure_wheelhouse(buildah, base_ref, cache / "wheels", log, say)
        volumes.append(f"{wheels}:{MOUNT}:ro")
        args["WHEELHOUSE"] = MOUNT
    say(f"building {ref} from {spec.dockerfile} (log: {log})")
    started = time.monotonic()
    buildah.bud(REPO / spec.dockerfile, REPO, [ref, stable], args, volumes, log)
    layout = cache / "tmp" / f"{spec.name}-{tag}.layout"
    shutil.rmtree(layout, ignore_errors=True)
    layout.parent.mkdir(parents=True, exist_ok=True)
    try:
        buildah.run("push", "--quiet", ref, f"oci:{layout}:{ref}", log=log)
        record, archive = _paths(cache, spec.name, key)
        write_archive(layout, [ref, stable], archive)
    finally:
        shutil.rmtree(layout, ignore_errors=True)
    say(f"checking {ref}")
    checks = CHECKS[spec.name](buildah, ref, archive, log)
    image = BuiltImage(name=spec.name, ref=ref, stable_ref=stable, archive=archive,
                       archive_bytes=archive.stat().st_size, unpacked_bytes=buildah.unpacked_bytes(ref), key=key,
                       build_seconds=round(time.monotonic() - started, 1), checks=tuple(checks), built_now=True)
    saved = {k: v for k, v in asdict(image).items() if k not in ("archive", "built_now")}
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    tmp.rename(record)
    previous = [*cache.glob(f"{spec.name}-*.json"), *cache.glob(f"{spec.name}-*.oci.tar"),
                *(cache / "logs").glob(f"{spec.name}-*.log")]
    for old in previous:
        if tag not in old.name:
            old.unlink(missing_ok=True)
    say(f"built {ref} in {image.build_seconds:.0f}s")
    return image
