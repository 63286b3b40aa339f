"""OCI image archives for `ctr -n k8s.io images import`, and reading them back without a container engine.

buildah pushes an image to an OCI layout directory; `write_archive` tars that layout with an index that names the
one manifest under each ref (`io.containerd.image.name` = the full ref, `org.opencontainers.image.ref.name` = its
tag: the annotations containerd's own exporter writes, and what e2e/localcluster/node_images.py writes for its
small images), so one import creates both the content-tagged and the stable name.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

XATTR_CAPS = "SCHILY.xattr.security.capability"
CAP_NAMES = {1: "cap_dac_override", 21: "cap_sys_admin", 12: "cap_net_admin", 0: "cap_chown", 7: "cap_setuid",
             6: "cap_setgid", 24: "cap_sys_resource"}


def indexed(index: dict[str, Any], refs: Sequence[str]) -> dict[str, Any]:
    """The layout's index.json with its single manifest listed once per ref."""
    (manifest,) = index["manifests"]
    entries = []
    for ref in refs:
        entry = {k: v for k, v in manifest.items() if k != "annotations"}
        entry["annotations"] = {"io.containerd.image.name": ref,
                                "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}
        entries.append(entry)
    return {**index, "manifests": entries}


def write_archive(layout: Path, refs: Sequence[str], out: Path) -> None:
    """Tar the OCI layout at `layout` into `out` (written to a temporary name, then renamed) naming `refs`."""
    index = indexed(json.loads((layout / "index.json").read_text()), refs)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", (layout / "oci-layout").read_bytes())
        _add_bytes(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for blob in sorted((layout / "blobs" / "sha256").iterdir()):
            info = tarfile.TarInfo(f"blobs/sha256/{blob.name}")
            info.size, info.mode, info.mtime = blob.stat().st_size, 0o644, 0
            with blob.open("rb") as data:
                tar.addfile(info, data)
    tmp.rename(out)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def read_index(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index: dict[str, Any] = json.load(member)
        return index


def archive_refs(archive: Path) -> list[str]:
    return [str(m.get("annotations", {}).get("io.containerd.image.name", ""))
            for m in read_index(archive)["manifests"]]


def _layers(tar: tarfile.TarFile) -> Iterator[IO[bytes] | gzip.GzipFile]:
    index = json.load(_open(tar, "index.json"))
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.load(_open(tar, f"blobs/sha256/{digest}"))
    for layer in manifest["layers"]:
        raw = _open(tar, f"blobs/sha256/{layer['digest'].split(':', 1)[1]}")
        yield gzip.GzipFile(fileobj=raw) if layer["mediaType"].endswith("gzip") else raw


def _open(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    member = tar.extractfile(name)
    if member is None:
        raise FileNotFoundError(name)
    return member


def file_pax_headers(archive: Path, path: str) -> dict[str, str] | None:
    """The PAX headers of `path` (no leading slash) in the topmost layer that holds it, or None if none does."""
    found: dict[str, str] | None = None
    with tarfile.open(archive) as tar:
        for layer in _layers(tar):
            with tarfile.open(fileobj=layer, mode="r|") as entries:
                for entry in entries:
                    if entry.name.removeprefix("./") == path:
                        found = dict(entry.pax_headers)
    return found


def decode_file_caps(value: str | bytes) -> tuple[set[str], bool]:
    """A security.capability xattr (vfs_cap_data v2/v3) as (permitted capability names, effective bit)."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    magic, permitted_lo, _inh_lo, permitted_hi, _inh_hi = struct.unpack_from("<5I", raw)
    permitted = permitted_lo | (permitted_hi << 32)
    names = {CAP_NAMES.get(bit, f"cap_{bit}") for bit in range(64) if permitted >> bit & 1}
    return names, bool(magic & 1)
