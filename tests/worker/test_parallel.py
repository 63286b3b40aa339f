"""Every parallel layout trains the same model as one process does on the same global batch.

DDP over 2 ranks (as two pods) and 4 ranks, tensor parallel 2, pipeline parallel 2 and hybrids are run as real
rank processes on CPU with gloo; their loss at every step and their exported weights must match a single process
within float tolerance (reduction order differs, nothing else may).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.worker.helpers import Run, load_weights, parse, run_worker, start_worker, worker_env

STEPS = 6
CONFIG = {"steps": STEPS, "batch_size": 8, "log_every": 1, "lr": 3e-3}
LOSS_TOL = 2e-5
WEIGHT_TOL = 2e-4


def _train(tmp: Path, name: str, **layout: int) -> tuple[Run, dict[str, torch.Tensor]]:
    out = tmp / name
    run = run_worker(worker_env("train", config={**CONFIG, "output_dir": str(out)}, **layout),  # type: ignore[arg-type]
                     timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    return run, load_weights(out / "model.pt")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, dict[str, torch.Tensor]]:
    return _train(tmp_path_factory.mktemp("single"), "single")


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param({"nproc": 4, "dp": 4}, id="ddp4"),
        pytest.param({"nproc": 2, "tp": 2}, id="tp2"),
        pytest.param({"nproc": 2, "pp": 2}, id="pp2"),
        pytest.param({"nproc": 4, "dp": 2, "tp": 2}, id="dp2xtp2", marks=pytest.mark.slow),
        pytest.param({"nproc": 4, "dp": 2, "pp": 2}, id="dp2xpp2", marks=pytest.mark.slow),
    ],
)
def test_layout_matches_single_process(tmp_path: Path, reference: tuple[Run, dict[str, torch.Tensor]],
                                       layout: dict[str, int]) -> None:
    ref_run, ref_weights = reference
    run, weights = _train(tmp_path, "run", **layout)
    start = run.one("start")
    assert (start["world_size"], start["dp"], start["tp"], start["pp"]) == (
        layout["nproc"], layout.get("dp", 1), layout.get("tp", 1), layout.get("pp", 1))
    ref_losses, losses = ref_run.losses(), run.losses()
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses[STEPS] < losses[1] - 0.1, "the model must actually learn"
    for step, loss in ref_losses.items():
        assert losses[step] == pytest.approx(loss, abs=LOSS_TOL), f"step {step}"
    assert weights.keys() == ref_weights.keys()
    for name, ref in ref_weights.items():
        torch.testing.assert_close(weights[name], ref, atol=WEIGHT_TOL, rtol=0, msg=f"{name} differs")
    assert run.one("done")["perplexity"] == pytest.approx(ref_run.one("done")["perplexity"], rel=1e-4)


def test_ddp2_as_two_pods_matches_single_process(tmp_path: Path,
                                                 reference: tuple[Run, dict[str, torch.Tensor]]) -> None:
    """DDP world size 2 as two 'pods' (NNODES=2), each its own launcher, ranks from JOB_COMPLETION_INDEX.

    Two ranks under one launcher are covered by the checkpoint and inference tests; four by ddp4 above.
    """
    out = tmp_path / "multi"
    base = worker_env("train", nproc=1, dp=2, config={**CONFIG, "output_dir": str(out)}, NNODES="2")
    pods = []
    for index in (1, 0):  # the order pods start in is not guaranteed
        env = {**base, "JOB_COMPLETION_INDEX": str(index)}
        stdout, stderr = tmp_path / f"pod{index}.out", tmp_path / f"pod{index}.err"
        pods.append((index, start_worker(env, stdout, stderr), stdout, stderr))
    for index, proc, _, stderr in pods:
        assert proc.wait(timeout=180) == 0, f"pod {index}: {stderr.read_text()[-3000:]}"
    events = parse((tmp_path / "pod0.out").read_text())
    start = next(e for e in events if e["event"] == "start")
    assert (start["world_size"], start["dp"]) == (2, 2)
    assert parse((tmp_path / "pod1.out").read_text()) == [], "only global rank 0 reports"
    losses = {e["step"]: e["loss"] for e in events if e["event"] == "step"}
    for step, loss in reference[0].losses().items():
        assert losses[step] == pytest.approx(loss, abs=LOSS_TOL)
    for name, ref in reference[1].items():
        torch.testing.assert_close(load_weights(out / "model.pt")[name], ref, atol=WEIGHT_TOL, rtol=0)
