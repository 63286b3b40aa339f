"""`python -m e2e.images build|list|check`: the commands behind `make images`.

build   build what changed (nothing while the inputs hold), then print each image's refs, archive and sizes
list    print the images already built for the current inputs (never builds); exit 1 if one is missing
check   run the smoke checks again on the built images (entry points, CPU training step, file capabilities)
"""

from __future__ import annotations

import argparse
import sys
import time

from e2e.images.build import IMAGE_NAMES, BuiltImage, cache_dir, cached_images, ensure_images
from e2e.images.buildah import Buildah, BuildahError
from e2e.images.check import CHECKS, ImageCheckError


def human(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def describe(image: BuiltImage) -> str:
    state = f"built in {image.build_seconds:.0f}s" if image.built_now else \
        f"cached (built in {image.build_seconds:.0f}s)"
    return (f"{image.name:<9} {image.ref}  (also {image.stable_ref.rsplit(':', 1)[1]})\n"
            f"          archive {image.archive}\n"
            f"          {human(image.archive_bytes)} compressed, {human(image.unpacked_bytes)} unpacked; {state}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="build", choices=["build", "list", "check"])
    parser.add_argument("names", nargs="*", default=list(IMAGE_NAMES), metavar="NAME",
                        help=f"images (default: {' '.join(IMAGE_NAMES)})")
    parser.add_argument("--full-torch", action="store_true", default=None,
                        help="keep triton in the worker image (default: LLMASOS_IMAGES_FULL_TORCH, else slim)")
    args = parser.parse_intermixed_args(argv)
    started = time.monotonic()
    try:
        if args.command == "list":
            images = cached_images(args.names, full_torch=args.full_torch)
            for image in images:
                print(describe(image))
            return 0 if len(images) == len(args.names) else 1
        images = ensure_images(args.names, full_torch=args.full_torch)
        if args.command == "check":
            cache = cache_dir()
            buildah = Buildah(cache / "buildah", cache / "buildah-run")
            for image in images:
                for passed in CHECKS[image.name](buildah, image.ref, image.archive, cache / "logs" / "check.log"):
                    print(f"{image.name}: ok  {passed}")
            return 0
    except (BuildahError, ImageCheckError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for image in images:
        print(describe(image))
    print(f"images ready in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
