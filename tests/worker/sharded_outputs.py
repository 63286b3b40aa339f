"""Rank program for test_sharded_outputs: forward a fixed batch through the worker's TP=2 and PP=2 engines.

Run with RANK unset, it launches itself on NPROC_PER_NODE=2 ranks through the worker's own launcher. Each rank
writes ``rank<N>.json`` into the directory given as argv[1]: the largest difference between the sharded
model's logits and the unsharded model's, and evidence that the model really was sharded.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch.distributed.device_mesh import init_device_mesh

from llmasos.api.worker_contract import WorkerEnv
from llmasos_worker.config import PRESETS
from llmasos_worker.distributed import Groups, init_groups, layout_from_env, shutdown
from llmasos_worker.engine import Engine
from llmasos_worker.launcher import launch
from llmasos_worker.model import build_model


def _engine(layout: object, groups: Groups) -> Engine:
    return Engine(build_model(PRESETS["gpt-tiny"], 0), layout, groups,  # type: ignore[arg-type]
                  lr=1e-3, weight_decay=0.0, microbatches=2, precision="fp32")


def main(out: Path) -> int:
    env = WorkerEnv.from_env()
    if "RANK" not in os.environ:
        return launch(env, [sys.executable, __file__, str(out)])
    cfg = PRESETS["gpt-tiny"]
    x = torch.randint(0, cfg.vocab_size, (4, cfg.seq_len), generator=torch.Generator().manual_seed(7))
    reference = build_model(cfg, 0).eval()(x).detach()
    tp_layout = layout_from_env(env)  # LLMASOS_TENSOR_PARALLEL=2
    tp_groups = init_groups(env, tp_layout)
    report: dict[str, object] = {"rank": tp_layout.rank}
    try:
        tp = _engine(tp_layout, tp_groups)
        wq = tp.model.layers["0"].attn.wq.weight  # type: ignore[union-attr,index]
        report["tp_local_wq_shape"] = list(wq.to_local().shape)
        tp_out = tp.forward(x)
        assert tp_out is not None
        report["tp_max_abs_diff"] = float((tp_out - reference).abs().max())

        pp_layout = replace(tp_layout, tp=1, pp=2)
        mesh = init_device_mesh("cpu", (1, 2, 1), mesh_dim_names=("dp", "pp", "tp"))
        pp = _engine(pp_layout, Groups(mesh=mesh, dp=None, pp=mesh.get_group("pp"), control=None))
        report["pp_layers"] = sorted(pp.model.layers.keys())  # type: ignore[union-attr,operator]
        pp_out = pp.forward(x)
        report["pp_has_output"] = pp_out is not None
        if pp_out is not None:
            report["pp_max_abs_diff"] = float((pp_out - reference).abs().max())
    finally:
        shutdown()
    (out / f"rank{tp_layout.rank}.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
