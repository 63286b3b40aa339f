"""What each image is made of, and the cache key that names it: pure functions over the repository's files.

An image's key is a hash of everything that can change its content: the base recipe, the Dockerfile, the files its
COPY instructions name (read from the Dockerfile itself, so the list lives in one place), `.dockerignore` and the
build arguments. Caches (`__pycache__`, `*.pyc`, `*.egg-info`) are left out, as `.dockerignore` leaves them out of
the build. What the key does not cover: new Debian security updates and new releases of unpinned transitive
PyPI dependencies; they enter when an input changes (or after `python -m e2e.images clean`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Bumped when the way images are built changes their content (not for edits that only move code around).
RECIPE_VERSION = "1"
REGISTRY = "localhost/llmasos"
STABLE_TAG = "dev"
IGNORED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc", ".egg-info")


@dataclass(frozen=True)
class BaseRecipe:
    """A python:3.11-slim-bookworm look-alike made by mmdebstrap from Debian packages: `python`, `python3` and
    `pip` on PATH, pip allowed to install system-wide (no EXTERNALLY-MANAGED marker), apt configured as in Debian's
    container images (no package caches, no translations) and the slim images' dpkg path exclusions."""

    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = (
        "python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates",
        "passwd",  # groupadd/useradd, used by both Dockerfiles
    )
    sources: tuple[str, ...] = (
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    )
    # As debuerreotype writes them for debian:bookworm(-slim), which python:*-slim-bookworm builds on.
    apt_options: tuple[str, ...] = (
        'Dir::Cache::pkgcache ""',
        'Dir::Cache::srcpkgcache ""',
        'Acquire::Languages "none"',
        'Acquire::GzipIndexes "true"',
        'APT::AutoRemove::SuggestsImportant "false"',
    )
    dpkg_options: tuple[str, ...] = (
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/info/*",
        "path-exclude=/usr/share/locale/*",
        "path-exclude=/usr/share/lintian/*",
    )
    # Removed from the root file system before it becomes the image's layer: pip's refusal to install system-wide,
    # and apt's binary caches that mmdebstrap's own final apt run leaves (73 MB).
    remove: tuple[str, ...] = ("/usr/lib/python3.11/EXTERNALLY-MANAGED", "/var/cache/apt/*.bin")
    env: tuple[tuple[str, str], ...] = (
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ("LANG", "C.UTF-8"),
    )
    cmd: tuple[str, ...] = ("python3",)

    def key(self) -> str:
        described = json.dumps({"version": RECIPE_VERSION, **self.__dict__}, sort_keys=True)
        return hashlib.sha256(described.encode()).hexdigest()

    @property
    def ref(self) -> str:
        return f"{REGISTRY}/base:{self.key()[:16]}"


@dataclass(frozen=True)
class ImageSpec:
    """One image of the product: its Dockerfile (repository-relative) and the build arguments besides BASE."""

    name: str
    dockerfile: str
    build_args: tuple[tuple[str, str], ...] = ()
    wheelhouse: bool = False  # install third-party wheels from the local wheelhouse (worker only)
    base: BaseRecipe = field(default_factory=BaseRecipe)

    def repo_name(self) -> str:
        return f"{REGISTRY}/{self.name}"


def image_specs(full_torch: bool = False) -> dict[str, ImageSpec]:
    """The two images; `full_torch` keeps triton in the worker (see worker_image/Dockerfile, SLIM_TORCH)."""
    worker_args = () if full_torch else (("SLIM_TORCH", "1"),)
    return {
        "operator": ImageSpec("operator", "Dockerfile"),
        "worker": ImageSpec("worker", "worker_image/Dockerfile", worker_args, wheelhouse=True),
    }


def logical_lines(dockerfile: str) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[str] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def copied_sources(dockerfile: str) -> list[str]:
    """The build-context paths named by COPY/ADD instructions (not `--from=` ones): the image's inputs."""
    sources: list[str] = []
    for line in logical_lines(dockerfile):
        words = line.split()
        if words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        if args and args[0].startswith("["):
            args = json.loads(" ".join(args))
        sources.extend(a.removeprefix("./").rstrip("/") or "." for a in args[:-1])
    return sources


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS and not d.endswith(IGNORED_SUFFIXES))
        for name in sorted(files):
            if not name.endswith(IGNORED_SUFFIXES):
                yield Path(root) / name


def tree_digest(paths: list[str], repo: Path = REPO) -> str:
    """sha256 over each file's repository-relative path, executable bit and content, in a stable order."""
    h = hashlib.sha256()
    for rel in sorted(set(paths)):
        top = repo / rel
        if not top.exists():
            raise FileNotFoundError(f"{rel}: named by a Dockerfile COPY but missing from the repository")
        for f in _files(top):
            mode = f.stat().st_mode
            h.update(f"{f.relative_to(repo)}\0{int(bool(mode & stat.S_IXUSR))}\0".encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def image_key(spec: ImageSpec, repo: Path = REPO) -> str:
    """The cache key of one image (hex sha256): base recipe, Dockerfile, copied sources, ignore file, build args."""
    dockerfile = (repo / spec.dockerfile).read_text()
    inputs = [spec.dockerfile, *copied_sources(dockerfile)]
    if (repo / ".dockerignore").exists():
        inputs.append(".dockerignore")
    h = hashlib.sha256()
    h.update(json.dumps({"version": RECIPE_VERSION, "name": spec.name, "base": spec.base.key(),
                         "args": sorted(spec.build_args), "wheelhouse": spec.wheelhouse}, sort_keys=True).encode())
    h.update(tree_digest(inputs, repo).encode())
    return h.hexdigest()


def worker_requirements(repo: Path = REPO) -> list[str]:
    """What the worker Dockerfile installs from PyPI: the package's dependencies and its worker extra."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["worker"]]

