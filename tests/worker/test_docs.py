"""docs/worker.md stays in step with the code: the env table with WorkerEnv.to_env, the key table with TaskConfig."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from llmasos.api.worker_contract import WorkerEnv
from llmasos_worker.config import TaskConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "worker.md"


def _first_column(section: str) -> set[str]:
    text = DOC.read_text()
    body = text.split(section, 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z_]+)` \|", body, flags=re.MULTILINE))


def test_env_table_matches_contract() -> None:
    rendered = set(WorkerEnv(job_name="j", namespace="n", task="train", strategy="ddp", nnodes=1, nproc_per_node=1,
                             master_addr="a").to_env())
    assert _first_column("## Environment contract") == rendered | {"NODE_RANK"}


def test_task_config_table_matches_dataclass() -> None:
    assert _first_column("### `LLMASOS_TASK_CONFIG`") == {f.name for f in fields(TaskConfig)}
