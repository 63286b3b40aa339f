"""The product's container images, built without a container engine: `make images`, `python -m e2e.images build`.

A base image made from Debian packages (mmdebstrap), then `llmasos/operator` from the root Dockerfile and
`llmasos/worker` from worker_image/Dockerfile with buildah (daemonless, chroot isolation), cached by the hash of
their inputs as OCI archives for `ctr -n k8s.io images import`. Refs: `localhost/llmasos/<name>:<key16>` and the
stable `localhost/llmasos/<name>:dev`. See docs/development.md, "Images".
"""

from e2e.images.build import IMAGE_NAMES, BuiltImage, cache_dir, cached_images, ensure_images
from e2e.images.recipe import REGISTRY, STABLE_TAG

__all__ = ["IMAGE_NAMES", "REGISTRY", "STABLE_TAG", "BuiltImage", "cache_dir", "cached_images", "ensure_images"]
