"""Shared fixtures for the worker tests: one small trained model reused by inference, Ray and compression tests.

Warnings stay errors (pyproject); nothing third-party warns in the code these tests import in-process, so no
filterwarnings entries are needed here. Tests marked ``slow`` (4-rank hybrid layouts, ~20 s each on 2 cores) run
only with LLMASOS_WORKER_SLOW=1, which keeps the default worker suite within its time budget.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.worker.helpers import run_worker, worker_env

TEACHER_STEPS = 200


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gpt-tiny trained for a few hundred steps on the shipped corpus, exported as model.pt (one process)."""
    out = tmp_path_factory.mktemp("teacher")
    config = {"steps": TEACHER_STEPS, "batch_size": 8, "log_every": 50, "output_dir": str(out)}
    run = run_worker(worker_env("train", config=config),
                     timeout=180)
    assert run.returncode == 0, run.stderr
    path = out / "model.pt"
    assert path.is_file()
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: worker test of over ~15 s; runs only with LLMASOS_WORKER_SLOW=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LLMASOS_WORKER_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow worker test: set LLMASOS_WORKER_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords and "tests/worker/" in item.nodeid:
            item.add_marker(skip)
