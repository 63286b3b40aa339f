"""Batched generation: data-parallel ranks and a local Ray cluster produce the same greedy completions.

The Ray test starts a real local Ray cluster (``ray.init`` inside the worker, 2 actors) and checks the reported
throughput is computed from what was generated.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest
import torch

from llmasos.api.worker_contract import FinalProgress, WorkerEnv, parse_final_progress
from llmasos_worker.config import PRESETS
from llmasos_worker.inference import generate
from llmasos_worker.model import build_model
from llmasos_worker.progress import Progress
from llmasos_worker.ray_infer import driver_endpoint
from tests.worker.helpers import free_port, run_worker, worker_env

NEW_TOKENS = 16
PROMPTS = ["The baker ", "A river does not ", "Wind from the ", "The cat sat on ", "In the evening "]


def test_ddp_and_ray_inference_agree(trained_model: Path, tmp_path: Path) -> None:
    config = {"prompts": PROMPTS, "max_new_tokens": NEW_TOKENS}
    # Each run's termination message stands in for the kubelet's: what the node agent reads once the pod ended.
    ddp_log, ray_log = tmp_path / "ddp-termination-log", tmp_path / "ray-termination-log"
    ddp_log.touch()
    ray_log.touch()
    single = run_worker(worker_env("inference", nproc=2, dp=2, config=config, LLMASOS_MODEL_PATH=str(trained_model),
                                   LLMASOS_PROGRESS_PORT=str(free_port()), LLMASOS_TERMINATION_LOG=str(ddp_log)))
    assert single.returncode == 0, single.stderr[-3000:]
    ray_env = worker_env("inference", strategy="ray", config={**config, "ray_actors": 2,
                                                               "output_dir": str(tmp_path)},
                         LLMASOS_MODEL_PATH=str(trained_model), HOME=str(tmp_path),
                         LLMASOS_PROGRESS_PORT=str(free_port()), LLMASOS_TERMINATION_LOG=str(ray_log))
    ray_env.pop("RAY_ADDRESS", None)
    ray = run_worker(ray_env, timeout=240)
    assert ray.returncode == 0, ray.stderr[-3000:]
    done, ray_done = single.one("done"), ray.one("done")
    assert ray_done["actors"] == 2
    assert ray_done["devices"] == ["cpu", "cpu"]
    assert done["new_tokens"] == ray_done["new_tokens"] == len(PROMPTS) * NEW_TOKENS
    # The pod's count is the job's, not its own replica's (rank 0 generated 3 of the 5 prompts), as in training:
    # the operator divides the job's energy by the largest pod's count.
    ddp_final, ray_final = parse_final_progress(ddp_log.read_text()), parse_final_progress(ray_log.read_text())
    assert ddp_final == FinalProgress(done["new_tokens"], 1, None)  # inference has no planned step count
    assert ray_final == FinalProgress(ray_done["new_tokens"], 1, None)
    assert ray_done["tokens_per_second"] == ray_done["new_tokens"] / ray_done["seconds"]
    assert ray_done["tokens_per_second"] > 0
    assert [c["prompt"] for c in ray_done["completions"]] == PROMPTS
    assert ray_done["completions"] == done["completions"], "greedy decoding must not depend on where it ran"
    assert (tmp_path / "result.json").is_file()
    # A trained model continues in the corpus' alphabet; the untrained one emits arbitrary bytes.
    assert all(c["completion"].isprintable() for c in done["completions"])


def test_generate_buckets_match_one_prompt_at_a_time() -> None:
    model = build_model(PRESETS["gpt-tiny"], 0)
    prompts = [torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(n)) for n in (3, 5, 3, 9)]
    together = generate(model, prompts, 6, 64, torch.device("cpu"))
    alone = [generate(model, [p], 6, 64, torch.device("cpu"))[0] for p in prompts]
    assert together == alone
    assert all(len(t) == 6 for t in together)


def test_finetune_continues_from_the_trained_model(trained_model: Path, tmp_path: Path) -> None:
    """finetune starts from LLMASOS_MODEL_PATH's weights, not from scratch (byte-level loss from scratch ~ ln 256)."""
    import json

    teacher = json.loads((trained_model.parent / "result.json").read_text())
    run = run_worker(worker_env("finetune", LLMASOS_MODEL_PATH=str(trained_model),
                                config={"steps": 3, "lr": 1e-4, "output_dir": str(tmp_path)}))
    assert run.returncode == 0, run.stderr[-3000:]
    first = run.losses()[1]
    assert first == pytest.approx(teacher["final_loss"], abs=0.35)
    assert first < 0.6 * math.log(256)
    assert (tmp_path / "model.pt").is_file()


def test_a_taken_port_costs_the_ray_driver_its_token_count_not_its_run(capsys: pytest.CaptureFixture[str]) -> None:
    """`ray start` in the head pod picks some ports at random; one may be the progress port."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = str(taken.getsockname()[1])
        env = WorkerEnv.from_env(worker_env("inference", strategy="ray", LLMASOS_PROGRESS_PORT=port))
        assert driver_endpoint(env, Progress()) is None
        assert f"no progress endpoint on port {port}" in capsys.readouterr().err
    finally:
        taken.close()
    server = driver_endpoint(env, Progress())  # free again: served
    assert server is not None
    server.stop()
