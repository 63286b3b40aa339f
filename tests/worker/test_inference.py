"""Batched generation: data-parallel ranks and a local Ray cluster produce the same greedy completions.

The Ray test starts a real local Ray cluster (``ray.init`` inside the worker, 2 actors) and checks the reported
throughput is computed from what was generated.
"""

from __future__ import annotations

import math
import socket
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from llmasos.api.worker_contract import FinalProgress, WorkerEnv, parse_final_progress
from llmasos_worker.config import PRESETS
from llmasos_worker.inference import generate
from llmasos_worker.model import build_model
from llmasos_worker.progress import Progress
from llmasos_worker.ray_infer import driver_endpoint
from tests.worker.helpers import free_port, run_worker, start_worker, worker_env

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
    # Inference's progress counts the job's new tokens, of the prompts x max_new_tokens it planned.
    assert ddp_final == FinalProgress(done["new_tokens"], done["new_tokens"], len(PROMPTS) * NEW_TOKENS)
    assert ray_final == FinalProgress(ray_done["new_tokens"], ray_done["new_tokens"], len(PROMPTS) * NEW_TOKENS)
    assert ray_done["tokens_per_second"] == ray_done["new_tokens"] / ray_done["seconds"]
    assert ray_done["tokens_per_second"] > 0
    assert [c["prompt"] for c in ray_done["completions"]] == PROMPTS
    assert ray_done["completions"] == done["completions"], "greedy decoding must not depend on where it ran"
    assert (tmp_path / "result.json").is_file()
    # A trained model continues in the corpus' alphabet; the untrained one emits arbitrary bytes.
    assert all(c["completion"].isprintable() for c in done["completions"])


@pytest.mark.parametrize("strategy", ["ddp", "ray"])
def test_a_running_inference_exports_the_jobs_new_tokens_of_those_it_planned(trained_model: Path, tmp_path: Path,
                                                                              strategy: str) -> None:
    """What the node agent reads from the pod while it generates: a count that grows towards prompts x tokens (two
    data-parallel ranks, or the Ray driver asking its two actors)."""
    from llmasos.agent.progress import DEFAULT_PROGRESS_METRICS, parse_progress

    tokens, port = 600, free_port()
    config = {"prompts": PROMPTS, "max_new_tokens": tokens}
    if strategy == "ray":
        env = worker_env("inference", strategy="ray", config={**config, "ray_actors": 2},
                         LLMASOS_MODEL_PATH=str(trained_model), HOME=str(tmp_path), LLMASOS_PROGRESS_PORT=str(port))
        env.pop("RAY_ADDRESS", None)
    else:
        env = worker_env("inference", nproc=2, dp=2, config=config, LLMASOS_MODEL_PATH=str(trained_model),
                         LLMASOS_PROGRESS_PORT=str(port))
    proc = start_worker(env, tmp_path / "out", tmp_path / "err")
    readings, end = [], time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    reading = parse_progress(resp.read().decode(), DEFAULT_PROGRESS_METRICS)
                if reading is not None and reading.planned_steps is not None:
                    readings.append(reading)
            except OSError:
                pass  # not serving yet, or already gone
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.wait(timeout=60) == 0, (tmp_path / "err").read_text()[-3000:]
    planned = len(PROMPTS) * tokens
    assert {r.planned_steps for r in readings} == {planned}
    steps = [r.step or 0 for r in readings]
    assert steps == sorted(steps), "the count only grows"
    assert any(0 < s < planned for s in steps), f"no reading while it generated: {sorted(set(steps))[:10]}"
    assert all(r.tokens == r.step for r in readings), "tokens and steps are the same count"
    assert any(r.remaining_seconds for r in readings), f"and the run time it still needs: {readings}"


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
