"""The real node's own small images, built here as one-layer OCI image archives: the sandbox and a toolbox.

- The sandbox ("pause") image: containerd needs a local one because registry.k8s.io cannot be reached. Its binary is
  compiled from `pause/pause.c` with the machine's gcc (`-static`).
- The toolbox image: Debian's static busybox (package busybox-static) with its applets linked, so tests can run a
  shell, `nslookup`, `wget` and `httpd` in real pods without the much larger LLMasOS images.

The archives are written by hand (an OCI image layout in a tar: a layer, a config, a manifest and an index), which
`ctr images import` reads, and cached outside the repository by the hash of their inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SANDBOX_REF = "localhost/llmasos/pause:1"
TOOLBOX_REF = "localhost/llmasos/toolbox:1"
BUSYBOX = Path("/bin/busybox")


def _cache_root() -> Path:
    return Path(os.environ.get("LLMASOS_CACHE_DIR", Path.home() / ".cache" / "llmasos"))


def ensure_sandbox_image() -> Path:
    """Return the cached OCI archive of the sandbox image, compiling and writing it on the first call."""
    source = (HERE / "pause" / "pause.c").read_bytes()
    key = hashlib.sha256(source + Path(__file__).read_bytes()).hexdigest()[:16]
    out = _cache_root() / "images" / f"pause-{key}.oci.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    binary = out.with_suffix(".bin")
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(HERE / "pause" / "pause.c")], check=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(build_oci_archive(SANDBOX_REF, {"pause": (binary.read_bytes(), 0o755)}, ["/pause"],
                                      user="65535:65535"))
    binary.unlink()
    tmp.rename(out)
    return out


def ensure_toolbox_image() -> Path:
    """Return the cached OCI archive of the toolbox image (busybox and its applets under /bin)."""
    busybox = BUSYBOX.read_bytes()
    key = hashlib.sha256(busybox + Path(__file__).read_bytes()).hexdigest()[:16]
    out = _cache_root() / "images" / f"toolbox-{key}.oci.tar"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    applets = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True).stdout.split()
    links = {f"bin/{a}": "busybox" for a in applets if a != "busybox"}
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(build_oci_archive(TOOLBOX_REF, {"bin/busybox": (busybox, 0o755)}, ["/bin/sh"], links,
                                      dirs={"tmp": 0o1777}, user="65534:65534"))
    tmp.rename(out)
    return out


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _layer(files: dict[str, tuple[bytes, int]], links: dict[str, str], dirs: dict[str, int]) -> tuple[bytes, str]:
    """A gzipped layer tar (reproducible: fixed mtimes and owners) and the digest of its uncompressed form."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in sorted(dirs.items()):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 0
            tar.addfile(info)
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
        for name, target in sorted(links.items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, 0
            tar.addfile(info)
    uncompressed = raw.getvalue()
    return gzip.compress(uncompressed, mtime=0), "sha256:" + hashlib.sha256(uncompressed).hexdigest()


def build_oci_archive(ref: str, files: dict[str, tuple[bytes, int]], entrypoint: list[str],
                      links: dict[str, str] | None = None, dirs: dict[str, int] | None = None,
                      user: str = "65534:65534") -> bytes:
    """An OCI image layout as a tar holding one layer with `files` (path -> (content, mode)), symbolic `links`
    (path -> target) and `dirs` (path -> mode), named `ref`, whose processes run as `user` (never root)."""
    layer, diff_id = _layer(files, links or {}, dirs or {})
    layer_digest, _ = _blob(layer)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": user},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    config_digest, _ = _blob(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest,
                    "size": len(layer)}],
    }, sort_keys=True).encode()
    manifest_digest, _ = _blob(manifest)
    index = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": len(manifest),
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]}}],
    }, sort_keys=True).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
        entries += [(f"blobs/sha256/{d.split(':', 1)[1]}", b) for d, b in
                    ((layer_digest, layer), (config_digest, config), (manifest_digest, manifest))]
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
