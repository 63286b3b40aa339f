"""Compression shrinks the model and keeps perplexity within stated bounds; compressed files load and agree.

Bounds (perplexity after / before, on the held-out split, gpt-tiny trained 200 steps) -- also stated in
docs/worker.md:  int8 quantization <= 1.05, magnitude pruning at 50% <= 1.25, structured pruning of 50% of MLP
units <= 1.25, distillation into a half-width student <= 1.25.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from llmasos.api.worker_contract import FinalProgress, parse_final_progress
from llmasos_worker.compress import distillation_loss, prune_magnitude, prune_structured
from llmasos_worker.config import PRESETS
from llmasos_worker.data import Corpus
from llmasos_worker.evaluate import perplexity
from llmasos_worker.loading import load_model
from llmasos_worker.model import Block, build_model
from llmasos_worker.quantize import Int8DynamicLinear, quantize_int8
from tests.worker.helpers import free_port, run_worker, worker_env

BOUNDS = {"quantize": 1.05, "prune_magnitude": 1.25, "prune_structured": 1.25, "distill": 1.25}
SIZE = {"quantize": 0.40, "prune_magnitude": 0.70, "prune_structured": 0.80, "distill": 0.50}


def test_compress_all_methods(trained_model: Path, tmp_path: Path) -> None:
    config = {"method": list(BOUNDS), "sparsity": 0.5, "distill_steps": 150, "output_dir": str(tmp_path)}
    run = run_worker(worker_env("compress", config=config, LLMASOS_MODEL_PATH=str(trained_model)), timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    before = run.one("baseline")
    assert before["perplexity"] < 20, "the fixture model must have learned something, or the bounds mean nothing"
    results = {e["method"]: e for e in run.of("compressed")}
    assert set(results) == set(BOUNDS)
    for method, after in results.items():
        assert after["perplexity"] / before["perplexity"] <= BOUNDS[method], method
        assert after["size_ratio"] <= SIZE[method], method
        assert after["latency_ms"] > 0
    linear = sum(m.weight.numel() for m in build_model(PRESETS["gpt-tiny"], 0).modules()
                 if isinstance(m, torch.nn.Linear))
    expected_nonzero = before["nonzero_parameters"] - 0.5 * linear  # half of all linear weights, globally
    assert results["prune_magnitude"]["nonzero_parameters"] == pytest.approx(expected_nonzero, abs=64)
    assert results["prune_structured"]["parameters"] < before["parameters"]
    assert results["distill"]["parameters"] < 0.5 * before["parameters"]

    # Every compressed model is a loadable file whose perplexity is the one reported.
    corpus = Corpus.load()
    for method, after in results.items():
        loaded = load_model("", after["model_path"], {}, 0)
        ppl, _ = perplexity(loaded.module, corpus.val, 8, loaded.seq_len, torch.device("cpu"))
        assert ppl == pytest.approx(after["perplexity"], rel=1e-4), method
    quantized = load_model("", results["quantize"]["model_path"], {}, 0).module
    assert any(isinstance(m, Int8DynamicLinear) for m in quantized.modules())


def test_compress_counts_its_training_steps_as_its_progress(tmp_path: Path) -> None:
    """Without a model file the built-in model is pre-trained (20 steps), then distilled (10 steps): 30 steps planned,
    and the final count in the termination message (the node agent's source for status.progress) is 30 of 30, with
    the tokens they trained on (batch 4 x gpt-tiny's 64)."""
    log = tmp_path / "termination-log"
    log.touch()
    config = {"method": ["quantize", "distill"], "steps": 20, "distill_steps": 10, "batch_size": 4,
              "eval_batches": 2}
    run = run_worker(worker_env("compress", config=config, LLMASOS_PROGRESS_PORT=str(free_port()),
                                LLMASOS_TERMINATION_LOG=str(log)), timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert parse_final_progress(log.read_text()) == FinalProgress(30 * 4 * 64, 30, 30)


def test_distillation_loss_formula() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 11, generator=g), torch.randn(2, 3, 11, generator=g)
    y = torch.randint(0, 11, (2, 3), generator=g)
    hard = torch.nn.functional.cross_entropy(s.flatten(0, 1), y.flatten())
    temp = 3.0
    p_t = torch.softmax(t.flatten(0, 1) / temp, -1)
    kl = (p_t * (p_t.log() - torch.log_softmax(s.flatten(0, 1) / temp, -1))).sum(-1).mean()
    assert distillation_loss(s, t, y, 1.0, temp).item() == pytest.approx(hard.item(), rel=1e-6)
    assert distillation_loss(s, t, y, 0.0, temp).item() == pytest.approx(temp**2 * kl.item(), rel=1e-5)
    mixed = distillation_loss(s, t, y, 0.3, temp).item()
    assert mixed == pytest.approx(0.3 * hard.item() + 0.7 * temp**2 * kl.item(), rel=1e-5)
    assert distillation_loss(t, t, y, 0.0, temp).item() == pytest.approx(0.0, abs=1e-6)


def test_int8_linear_is_close_and_four_times_smaller() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    q = Int8DynamicLinear.from_linear(linear)
    x = torch.randn(5, 7, 64)
    ref, out = linear(x), q(x)
    assert out.shape == ref.shape
    assert ((out - ref).norm() / ref.norm()).item() < 0.02
    assert q.qweight.dtype == torch.int8
    assert q.qweight.numel() == linear.weight.numel()
    model = quantize_int8(build_model(PRESETS["gpt-tiny"], 0))
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())


def test_pruning_is_what_it_says() -> None:
    model = build_model(PRESETS["gpt-tiny"], 0)
    prune_magnitude(model, 0.5)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, torch.nn.Linear)])
    assert (weights == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)

    # Structured pruning drops whole MLP units: the smaller MLP must equal the dense one with those units zeroed.
    dense = build_model(PRESETS["gpt-tiny"], 0).eval()
    h = torch.randn(3, 5, 64)
    block = dense.layers["0"]
    assert isinstance(block, Block)
    mlp = block.mlp
    score = mlp.fc1.weight.norm(dim=1) * mlp.fc2.weight.norm(dim=0)
    keep = score.topk(192).indices
    mask = torch.zeros(256)
    mask[keep] = 1.0
    with torch.no_grad():
        masked = mlp.fc2(torch.nn.functional.gelu(mlp.fc1(h)) * mask)
        pruned = prune_structured(dense, 0.25)
        small = block.mlp
        assert small is not mlp
        assert pruned.cfg.d_ff == 192
        assert small.fc1.out_features == 192
        torch.testing.assert_close(small(h), masked, atol=1e-6, rtol=0)
        assert math.isfinite(pruned(torch.randint(0, 256, (2, 16))).sum().item())
