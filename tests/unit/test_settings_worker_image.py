"""Settings.worker_image is checked at start as an image reference, so a mistyped or cut-short digest stops the
operator with a message naming the setting instead of failing every worker pod with ErrImagePull (issue 21, 6)."""

from __future__ import annotations

import pytest

from llmasos.errors import ConfigError
from llmasos.settings import Settings, image_reference_problem, load_settings

DIGEST = "sha256:" + "0123456789abcdef" * 4

VALID = ["ghcr.io/llmasos/worker:0.1.0", "localhost/llmasos/worker:dev", "localhost:5000/worker",
         "registry/worker:2", "worker", f"ghcr.io/llmasos/worker@{DIGEST}", f"ghcr.io/llmasos/worker:0.1.0@{DIGEST}",
         "my-registry.example.com:443/team__a/worker.gpu-v2:2026.12_rc-1"]


@pytest.mark.parametrize("ref", VALID)
def test_references_are_accepted(ref: str) -> None:
    assert image_reference_problem(ref) is None
    assert Settings(worker_image=ref).worker_image == ref


INVALID = [
    ("", "empty"),
    (f"ghcr.io/llmasos/worker@{DIGEST[:-1]}", "64 lower-case hex"),  # one digit short
    (f"ghcr.io/llmasos/worker@{DIGEST.upper()}", "64 lower-case hex"),
    ("ghcr.io/llmasos/worker@" + "0" * 64, "64 lower-case hex"),  # no algorithm
    (f"ghcr.io/llmasos/worker@sha512:{'0' * 128}", "sha256"),
    (f"ghcr.io/llmasos/worker@{DIGEST}@{DIGEST}", "64 lower-case hex"),
    ("ghcr.io/llmasos/worker:", "tag"),
    ("ghcr.io/llmasos/worker:a b", "tag"),
    ("ghcr.io/llmasos/worker:" + "t" * 129, "tag"),
    ("ghcr.io/LLMasOS/worker:1", "lower-case"),
    ("ghcr.io/llmasos//worker", "lower-case"),
    ("https://ghcr.io/llmasos/worker", "lower-case"),
    (" ghcr.io/llmasos/worker", "lower-case"),
]


@pytest.mark.parametrize(("ref", "why"), INVALID)
def test_malformed_references_stop_the_start(ref: str, why: str) -> None:
    problem = image_reference_problem(ref)
    assert problem is not None
    assert why in problem
    with pytest.raises(ConfigError, match="worker_image"):
        Settings(worker_image=ref)


def test_the_error_names_what_the_user_wrote() -> None:
    with pytest.raises(ConfigError, match=r"LLMASOS_WORKER_IMAGE \(environment, Helm value operator\.settings\."
                                          r"workerImage\).*64 lower-case hex"):
        load_settings(env={"LLMASOS_WORKER_IMAGE": "ghcr.io/llmasos/worker@sha256:abc"})
