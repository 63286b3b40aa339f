"""A local Hugging Face causal LM: finetuned with DDP and served, never downloaded (needs `transformers`).

`transformers` is not in the worker extra, so this test is skipped unless it is importable; the model is created
here from a tiny random GPT-2 config and saved to a temporary directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.helpers import run_worker, worker_env


def _tiny_gpt2(directory: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=256, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(config).save_pretrained(str(directory))


def test_hf_model_finetunes_and_serves(tmp_path: Path) -> None:
    model = tmp_path / "gpt2-tiny"
    _tiny_gpt2(model)
    out = tmp_path / "out"
    tune = run_worker(worker_env("finetune", nproc=2, dp=2, LLMASOS_MODEL_PATH=str(model),
                                 config={"steps": 8, "batch_size": 4, "lr": 0.01, "output_dir": str(out)}))
    assert tune.returncode == 0, tune.stderr[-3000:]
    losses = tune.losses()
    assert losses[8] < losses[1]
    done = tune.one("done")
    assert done["model_path"] == str(out / "hf-model")
    assert done["eval_loss"] < losses[1]
    serve = run_worker(worker_env("inference", LLMASOS_MODEL_PATH=done["model_path"],
                                  config={"prompts": ["The river "], "max_new_tokens": 4}))
    assert serve.returncode == 0, serve.stderr[-3000:]
    assert serve.one("done")["new_tokens"] == 4


def test_hf_model_refuses_tensor_parallel(tmp_path: Path) -> None:
    model = tmp_path / "gpt2-tiny"
    _tiny_gpt2(model)
    run = run_worker(worker_env("train", nproc=2, tp=2, LLMASOS_MODEL_PATH=str(model)))
    assert run.returncode == 2
    assert "tensor and pipeline parallel need a built-in model" in run.stderr
