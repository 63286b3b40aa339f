"""Issue 21, point 6 as rendered: both images can be pinned by digest, and a malformed pin fails at `helm template`
(values schema) or at the operator's start (Settings), never as ErrImagePull on every node.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmasos.errors import ConfigError
from llmasos.settings import load_settings
from tests.chart.conftest import CHART, HelmError, Render, containers, env_of, one

DIGEST = "sha256:" + "ab" * 32


def worker_image(objects: list[dict[str, Any]]) -> str:
    (c,) = containers(one(objects, "Deployment", "-operator"))
    return str(env_of(c)["LLMASOS_WORKER_IMAGE"])


def test_worker_image_is_a_tag_by_default(render: Render) -> None:
    assert worker_image(render()) == "ghcr.io/llmasos/worker:0.1.0"


def test_worker_image_digest_pins_it(render: Render) -> None:
    image = worker_image(render(set_values=[f"operator.settings.workerImageDigest={DIGEST}"]))
    assert image == f"ghcr.io/llmasos/worker:0.1.0@{DIGEST}"
    assert load_settings(env={"LLMASOS_WORKER_IMAGE": image}).worker_image == image


def test_worker_image_may_carry_its_digest_itself(render: Render) -> None:
    ref = f"registry.example:5000/ml/worker@{DIGEST}"
    assert worker_image(render(set_values=[f"operator.settings.workerImage={ref}"])) == ref


def test_two_digests_for_the_worker_are_refused(render: Render) -> None:
    with pytest.raises(HelmError, match="already has a digest"):
        render(set_values=[f"operator.settings.workerImage=r/worker@{DIGEST}",
                           f"operator.settings.workerImageDigest={DIGEST}"], expect_error=True)


@pytest.mark.parametrize("values", [
    "operator.settings.workerImageDigest=sha256:abc",  # cut short
    "operator.settings.workerImageDigest=abab",  # no algorithm
    "operator.settings.workerImage=r/worker@sha256:abc",
    "image.digest=sha256:ABAB",
])
def test_a_malformed_digest_fails_the_render(render: Render, values: str) -> None:
    with pytest.raises(HelmError, match="does not match pattern"):
        render(set_values=[values], expect_error=True)


def test_ci_values_pin_both_images_by_digest(render: Render) -> None:
    """ci/electricitymaps-values.yaml pins both, so kubeconform and kube-score check a digest-pinned render too."""
    objects = render([CHART / "ci" / "electricitymaps-values.yaml"])
    for kind in ("Deployment", "DaemonSet"):
        (c,) = containers(one(objects, kind))
        assert c["image"] == "ghcr.io/llmasos/llmasos@sha256:" + "0" * 64, kind
        assert c["imagePullPolicy"] == "IfNotPresent", "exact once pinned: the same bytes on every node"
    assert worker_image(objects) == "ghcr.io/llmasos/worker:0.1.0@sha256:" + "1" * 64


def test_operator_refuses_a_worker_image_the_chart_cannot_catch() -> None:
    """The schema checks only the shape around '@'; the operator checks the whole reference at start, naming the
    Helm value."""
    with pytest.raises(ConfigError, match=r"operator\.settings\.workerImage.*lower-case"):
        load_settings(env={"LLMASOS_WORKER_IMAGE": "Registry.example/ML/Worker:1"})
