"""Bad configuration exits with status 2 and one clear line, before (or instead of) any training."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from llmasos.api.worker_contract import EXIT_CONFIG_ERROR
from tests.worker.helpers import WORKER, run_worker, worker_env

PREFIX = "llmasos-worker: configuration error: "


def _assert_config_error(env: dict[str, str], *needles: str) -> str:
    run = run_worker(env, timeout=60)
    assert run.returncode == EXIT_CONFIG_ERROR, (run.returncode, run.stderr)
    lines = [line for line in run.stderr.splitlines() if line.startswith(PREFIX)]
    assert lines, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert run.events == [], "nothing may start"
    return lines[0]


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        pytest.param({"nproc": 3, "tp": 2}, ("= 2", "WORLD_SIZE = 3"), id="world-not-divisible-by-tp"),
        pytest.param({"nproc": 4, "dp": 2, "tp": 3, "strategy": "hybrid"}, ("= 6", "WORLD_SIZE = 4"),
                     id="degrees-exceed-world"),
        pytest.param({"nproc": 3, "tp": 3}, ("n_head=4", "LLMASOS_TENSOR_PARALLEL=3"), id="heads-not-divisible"),
        pytest.param({"nproc": 2, "dp": 2, "config": {"batch_size": 3}}, ("batch_size=3",), id="batch-not-divisible"),
        pytest.param({"nproc": 2, "tp": 2, "strategy": "ddp"}, ("LLMASOS_STRATEGY=ddp",), id="strategy-mismatch"),
        pytest.param({"config": {"stepz": 3}}, ("unknown keys ['stepz']",), id="typo-in-task-config"),
        pytest.param({"config": {"steps": "ten"}}, ("steps has the wrong type",), id="wrong-type"),
    ],
)
def test_layout_errors(kwargs: dict[str, object], needles: tuple[str, ...]) -> None:
    config = kwargs.pop("config", None)
    env = worker_env("train", config=config, **kwargs)  # type: ignore[arg-type]
    _assert_config_error(env, *needles)


def test_world_size_disagreeing_with_nnodes_times_nproc() -> None:
    _assert_config_error(worker_env("train", nproc=2, dp=2, WORLD_SIZE="4"), "WORLD_SIZE=4")


def test_task_config_not_json() -> None:
    env = worker_env("train")
    env["LLMASOS_TASK_CONFIG"] = "{steps: 3"
    _assert_config_error(env, "LLMASOS_TASK_CONFIG is not valid JSON")


def test_missing_model_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.pt"
    _assert_config_error(worker_env("inference", LLMASOS_MODEL_PATH=str(missing)), str(missing), "does not exist")


def test_finetune_without_model_path() -> None:
    _assert_config_error(worker_env("finetune"), "needs LLMASOS_MODEL_PATH")


def test_hub_repo_without_local_path() -> None:
    _assert_config_error(worker_env("inference", LLMASOS_MODEL_HF_REPO="org/model"), "never downloads")


@pytest.mark.parametrize("nproc", [1, 2])
def test_unreadable_model_file(tmp_path: Path, nproc: int) -> None:
    """A file that exists but is not a model fails in the rank(s); the launcher passes the status through."""
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"definitely not a torch archive")
    env = worker_env("inference", nproc=nproc, dp=nproc, LLMASOS_MODEL_PATH=str(bogus))
    _assert_config_error(env, str(bogus), "not a readable model file")


@pytest.mark.parametrize("nproc", [1, 2])
def test_model_file_of_another_format(tmp_path: Path, nproc: int) -> None:
    """Found only when a rank opens the file: with two ranks, the launcher must pass their status 2 through."""
    import torch

    other = tmp_path / "weights.pt"
    torch.save({"state_dict": {}}, other)
    env = worker_env("inference", nproc=nproc, dp=nproc, LLMASOS_MODEL_PATH=str(other))
    _assert_config_error(env, "is not an llmasos-gpt/1 model file")


def test_directory_without_model(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text(json.dumps({"hello": 1}))
    _assert_config_error(worker_env("inference", LLMASOS_MODEL_PATH=str(tmp_path)), "neither model.pt nor")


def test_help_prints_usage_and_starts_nothing() -> None:
    """`llmasos-worker --help` (the image check and the real-node pod test run it) needs no environment."""
    env = {k: v for k, v in worker_env("train").items() if not k.startswith("LLMASOS_")}
    proc = subprocess.run([*WORKER, "--help"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: llmasos-worker")
    assert "LLMASOS_" in proc.stdout
