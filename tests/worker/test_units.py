"""Pure pieces of the worker: task config parsing, layout arithmetic, data determinism, LR schedule, launcher env."""

from __future__ import annotations

import itertools

import pytest
import torch

from llmasos.api.worker_contract import EXIT_PEER_LOST, EXIT_SUSPENDED, WorkerContractError, WorkerEnv
from llmasos_worker.config import ConfigError, TaskConfig, model_config
from llmasos_worker.data import Corpus, global_batch, replica_batch, replica_slice
from llmasos_worker.distributed import Layout
from llmasos_worker.launcher import _combine, rank_env
from llmasos_worker.train import learning_rate


def test_task_config_types_and_defaults() -> None:
    cfg = TaskConfig.from_mapping({"steps": 5, "lr": 1, "method": "distill", "model": {"d_model": 32}})
    assert (cfg.steps, cfg.lr, cfg.method) == (5, 1.0, ("distill",))
    assert model_config("gpt-small", {"n_layer": 2}).n_layer == 2
    for bad in ({"steps": 0}, {"steps": True}, {"precision": "fp8"}, {"method": ["zip"]}, {"alpha": 2.0}):
        with pytest.raises(ConfigError):
            TaskConfig.from_mapping(bad)
    with pytest.raises(ConfigError, match="gpt-huge"):
        model_config("gpt-huge", {})
    with pytest.raises(ConfigError, match="not divisible"):
        model_config("gpt-tiny", {"n_head": 3})


def test_contract_round_trip_keeps_new_fields() -> None:
    env = WorkerEnv(job_name="j", namespace="n", task="train", strategy="ddp", nnodes=2, nproc_per_node=2,
                    master_addr="h", data_parallel=4, progress_bind="127.0.0.1", task_config={"steps": 3})
    parsed = WorkerEnv.from_env({**env.to_env(), "JOB_COMPLETION_INDEX": "1"})
    assert parsed.progress_bind == "127.0.0.1"
    assert parsed.node_rank == 1
    assert parsed.task_config == {"steps": 3}
    with pytest.raises(WorkerContractError, match="WORLD_SIZE=3"):
        WorkerEnv.from_env({**env.to_env(), "WORLD_SIZE": "3"})


def test_rank_layout_is_dp_pp_tp_with_tp_innermost() -> None:
    coords = [(lay.dp_rank, lay.pp_rank, lay.tp_rank) for lay in
              (Layout(r, r, 8, 2, 2, 2, torch.device("cpu")) for r in range(8))]
    assert coords == [(d, p, t) for d in range(2) for p in range(2) for t in range(2)]
    assert [r for r in range(8) if Layout(r, r, 8, 2, 2, 2, torch.device("cpu")).is_logger] == [2]


def test_batches_are_a_function_of_seed_and_step() -> None:
    tokens = Corpus.load().train
    a, b = global_batch(tokens, 1, 5, 8, 16), global_batch(tokens, 1, 5, 8, 16)
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1][:, :-1], a[0][:, 1:])
    assert not torch.equal(a[0], global_batch(tokens, 1, 6, 8, 16)[0])
    halves = [replica_slice(a[0], r, 2) for r in range(2)]
    assert torch.equal(torch.cat(halves), a[0])
    # The batch of a step is part of the resume contract: the same offsets, drawn the same way, in every version.
    starts = torch.randint(0, len(tokens) - 17, (8,), generator=torch.Generator().manual_seed(1_000_003 + 5))
    assert torch.equal(a[0], torch.stack([tokens[i : i + 16] for i in starts.tolist()]))
    assert torch.equal(a[1], torch.stack([tokens[i + 1 : i + 17] for i in starts.tolist()]))


@pytest.mark.parametrize("replicas", [1, 2, 4, 8])
def test_replica_batch_is_its_slice_of_the_global_batch(replicas: int) -> None:
    tokens = Corpus.load().train
    x, y = global_batch(tokens, 3, 7, 8, 32)
    for r in range(replicas):
        rx, ry = replica_batch(tokens, 3, 7, 8, 32, r, replicas)
        assert torch.equal(rx, replica_slice(x, r, replicas))
        assert torch.equal(ry, replica_slice(y, r, replicas))
        assert rx.is_contiguous()
        assert ry.is_contiguous()


def test_learning_rate_warmup_then_cosine() -> None:
    lrs = [learning_rate(s, 1.0, 4, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(x >= y for x, y in itertools.pairwise(lrs[3:]))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_launcher_env_and_exit_codes() -> None:
    env = WorkerEnv(job_name="j", namespace="n", task="train", strategy="ddp", nnodes=2, nproc_per_node=4,
                    master_addr="m", master_port=1234, node_rank=1, data_parallel=8)
    child = rank_env(env, 3, {"PATH": "/bin"})
    assert (child["RANK"], child["LOCAL_RANK"], child["WORLD_SIZE"], child["LOCAL_WORLD_SIZE"]) == ("7", "3", "8", "4")
    assert child["MASTER_ADDR"] == "m"
    assert child["MASTER_PORT"] == "1234"
    assert child["PATH"] == "/bin"
    assert _combine([0, 0]) == 0
    assert _combine([0, EXIT_SUSPENDED]) == EXIT_SUSPENDED
    assert _combine([EXIT_SUSPENDED, 2]) == 2
    assert _combine([-9, 0]) == 1
    # A rank that only lost its group yields to one that failed on its own, in either order.
    assert _combine([EXIT_PEER_LOST, 137]) == 137
    assert _combine([3, EXIT_PEER_LOST]) == 3
    assert _combine([EXIT_PEER_LOST, EXIT_SUSPENDED]) == EXIT_PEER_LOST


def test_stop_check_interval_follows_the_pace() -> None:
    from llmasos_worker.train import StopCheck

    check = StopCheck(0.5, 0, 100.0)
    assert check.propose(0, 100.0) == 1  # nothing measured yet: check again after one step
    assert check.propose(1, 100.2) == 2  # 0.2 s per step -> two steps per half second
    assert check.propose(11, 100.3) == 50  # 10 ms per step
    assert StopCheck(0.0, 0, 0.0).propose(5, 1.0) == 1


def test_pipeline_stages_cover_every_layer_once() -> None:
    from llmasos_worker.config import PRESETS
    from llmasos_worker.model import build_model, stage_bounds

    assert stage_bounds(6, 4) == [(0, 1), (1, 3), (3, 4), (4, 6)]
    for layers, stages in ((2, 2), (6, 4), (7, 3), (12, 5)):
        bounds = stage_bounds(layers, stages)
        assert [i for lo, hi in bounds for i in range(lo, hi)] == list(range(layers))
        assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1
    kept = []
    for stage in range(4):
        model = build_model(model_config("gpt-small", {"n_layer": 6, "d_model": 32, "n_head": 2, "d_ff": 64}), 0)
        model.keep_stage(stage, 4)
        kept.append(sorted(model.layers.keys()))
        assert (model.tok_emb is not None) == (stage == 0)
        assert (model.head is not None) == (stage == 3)
    assert kept == [["0"], ["1", "2"], ["3"], ["4", "5"]]
    assert PRESETS["gpt-small"].n_layer == 6
