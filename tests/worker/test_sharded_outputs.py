"""TP=2 (DTensor parallelize_module) and PP=2 (torch.distributed.pipelining) logits equal the unsharded model's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.worker.helpers import worker_env

TOLERANCE = 1e-5
SCRIPT = Path(__file__).with_name("sharded_outputs.py")


def test_tensor_and_pipeline_parallel_outputs_equal_unsharded(tmp_path: Path) -> None:
    env = worker_env("inference", nproc=2, tp=2)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for report in reports:
        assert report["tp_local_wq_shape"] == [32, 64], "each tensor-parallel rank must hold half of wq's rows"
        assert report["tp_max_abs_diff"] < TOLERANCE
    assert [r["pp_layers"] for r in reports] == [["0"], ["1"]], "each pipeline stage must own one layer"
    assert [r["pp_has_output"] for r in reports] == [False, True]
    assert reports[1]["pp_max_abs_diff"] < TOLERANCE
