"""The pure parts of e2e/images: what a Dockerfile copies, the cache key, the archive index, capability decoding.

The builds themselves (mmdebstrap, buildah, minutes) run in `make images`, which checks every image it builds.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from e2e.images.archive import decode_file_caps, indexed
from e2e.images.base import apt_conf_text, mmdebstrap_command
from e2e.images.recipe import REPO, BaseRecipe, ImageSpec, copied_sources, image_key, image_specs
from e2e.images.wheelhouse import files_named

DOCKERFILE = """\
ARG BASE=python:3.11.11-slim-bookworm
FROM ${BASE} AS build
# COPY commented/out ./nowhere
COPY pyproject.toml README.md \\
     LICENSE ./
COPY ./operator ./operator
FROM ${BASE}
COPY --from=build /wheels /wheels
COPY ["worker_image/constraints.txt", "/tmp/c.txt"]
"""


def test_copied_sources_reads_copy_lines_but_not_stage_copies() -> None:
    assert copied_sources(DOCKERFILE) == [
        "pyproject.toml", "README.md", "LICENSE", "operator", "worker_image/constraints.txt"]


@pytest.mark.parametrize("name", ["operator", "worker"])
def test_the_repository_dockerfiles_copy_what_exists(name: str) -> None:
    spec = image_specs()[name]
    sources = copied_sources((REPO / spec.dockerfile).read_text())
    assert "pyproject.toml" in sources
    assert all((REPO / s).exists() for s in sources), sources


def _repo(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY src ./src\n")
    return tmp_path


def test_key_changes_with_sources_args_and_base_but_not_with_caches(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    spec = ImageSpec("operator", "Dockerfile")
    key = image_key(spec, repo)
    (repo / "src" / "__pycache__").mkdir()
    (repo / "src" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (repo / "unrelated.txt").write_text("not copied")
    assert image_key(spec, repo) == key
    assert image_key(ImageSpec("operator", "Dockerfile", (("SLIM_TORCH", "1"),)), repo) != key
    assert image_key(ImageSpec("operator", "Dockerfile", base=BaseRecipe(packages=("python3",))), repo) != key
    (repo / "src" / "a.py").write_text("x = 2\n")
    assert image_key(spec, repo) != key


def test_key_changes_with_the_executable_bit(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    spec = ImageSpec("operator", "Dockerfile")
    key = image_key(spec, repo)
    (repo / "src" / "a.py").chmod(0o755)
    assert image_key(spec, repo) != key


def test_a_missing_copied_file_is_an_error(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY gone ./gone\n")
    with pytest.raises(FileNotFoundError, match="gone"):
        image_key(ImageSpec("operator", "Dockerfile"), repo)


def test_slim_torch_is_the_default_and_full_torch_another_key() -> None:
    assert ("SLIM_TORCH", "1") in image_specs()["worker"].build_args
    assert image_specs(full_torch=True)["worker"].build_args == ()
    assert image_key(image_specs()["worker"]) != image_key(image_specs(full_torch=True)["worker"])


def test_index_names_the_manifest_once_per_ref() -> None:
    manifest = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:ab", "size": 3,
                "annotations": {"org.opencontainers.image.ref.name": "localhost/llmasos/worker:x"}}
    out = indexed({"schemaVersion": 2, "manifests": [manifest]},
                  ["localhost/llmasos/worker:0123", "localhost/llmasos/worker:dev"])
    assert [m["annotations"] for m in out["manifests"]] == [
        {"io.containerd.image.name": "localhost/llmasos/worker:0123", "org.opencontainers.image.ref.name": "0123"},
        {"io.containerd.image.name": "localhost/llmasos/worker:dev", "org.opencontainers.image.ref.name": "dev"},
    ]
    assert {m["digest"] for m in out["manifests"]} == {"sha256:ab"}


def test_file_capabilities_decode_as_setcap_wrote_them() -> None:
    # setcap cap_sys_admin,cap_dac_override+p: VFS_CAP_REVISION_2, no effective bit, permitted bits 1 and 21.
    raw = struct.pack("<5I", 0x02000000, (1 << 1) | (1 << 21), 0, 0, 0)
    assert decode_file_caps(raw) == ({"cap_dac_override", "cap_sys_admin"}, False)
    # tarfile hands PAX values over as str (surrogate-escaped where not UTF-8)
    assert decode_file_caps(raw.decode("utf-8", "surrogateescape")) == ({"cap_dac_override", "cap_sys_admin"}, False)
    assert decode_file_caps(struct.pack("<5I", 0x02000001, 1 << 21, 0, 0, 0)) == ({"cap_sys_admin"}, True)


def test_wheelhouse_keeps_the_files_pip_named() -> None:
    output = ("Collecting torch==2.15.0\n  File was already downloaded /wheelhouse/torch-2.15.0-cp311.whl\n"
              "Saved /wheelhouse/six-1.17.0-py2.py3-none-any.whl\nSuccessfully downloaded torch six\n")
    assert files_named(output) == {"torch-2.15.0-cp311.whl", "six-1.17.0-py2.py3-none-any.whl"}


def test_base_recipe_is_a_slim_python_lookalike(tmp_path: Path) -> None:
    recipe = BaseRecipe()
    argv = mmdebstrap_command(recipe, tmp_path / "apt.conf", tmp_path / "rootfs.tar")
    assert "--variant=minbase" in argv
    assert any(a.startswith("--include=") and "python-is-python3" in a and "python3-venv" in a for a in argv)
    assert "/usr/lib/python3.11/EXTERNALLY-MANAGED" in recipe.remove, "pip installs system-wide, as in python:*-slim"
    assert not any(a.startswith("--aptopt") for a in argv), "container apt settings must not steer the host's apt"
    conf = apt_conf_text(recipe)
    assert 'Dir::Cache::pkgcache "";' in conf
    assert "DPkg::Post-Invoke" in conf
    assert recipe.ref.startswith("localhost/llmasos/base:")
