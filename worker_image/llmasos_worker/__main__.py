"""``llmasos-worker``: read the operator's environment, check it, then launch the ranks or run as one.

Why three roles in one entry point: the pod runs ``llmasos-worker`` as its only process; with RANK unset it is the
node's launcher (spawns NPROC_PER_NODE copies of itself); with RANK set (by the launcher or by torchrun) it is a
rank; with strategy ``ray`` it is the Ray driver. Configuration is checked before anything heavy is imported, so a
bad LLMJob fails in milliseconds with exit code 2 and a single ``llmasos-worker: configuration error: ...`` line.
"""

from __future__ import annotations

import os
import sys

from llmasos.api.worker_contract import EXIT_CONFIG_ERROR, WorkerContractError, WorkerEnv
from llmasos_worker.config import ConfigError, TaskConfig, check_layout


def _config_error(exc: Exception) -> int:
    print(f"llmasos-worker: configuration error: {exc}", file=sys.stderr, flush=True)
    return EXIT_CONFIG_ERROR


USAGE = """usage: llmasos-worker [-h]

Runs one LLMasOS worker pod's task (train, infer, compress) as configured by the LLMASOS_* environment the
operator renders (docs/worker.md); it reads no other arguments. Exit codes: 0 done, 2 configuration error,
75 suspended (SIGTERM; checkpoint written), 76 lost its group (another worker failed first)."""


def main(argv: list[str] | None = None) -> int:
    if {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):
        print(USAGE)
        return 0
    try:
        env = WorkerEnv.from_env()
        cfg = TaskConfig.from_mapping(env.task_config)
        check_layout(env, cfg)
    except (WorkerContractError, ConfigError) as exc:
        return _config_error(exc)
    try:
        if env.strategy == "ray":
            from llmasos_worker.ray_infer import run_ray

            return run_ray(env, cfg)
        if "RANK" in os.environ and "LOCAL_RANK" in os.environ:
            from llmasos_worker.runtime import run_rank

            return run_rank(env, cfg, int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]))
        if env.world_size == 1:
            from llmasos_worker.runtime import run_rank

            os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})
            return run_rank(env, cfg, 0, 0)
        from llmasos_worker.launcher import launch

        return launch(env)
    except ConfigError as exc:  # found only once the model or corpus is opened
        return _config_error(exc)


if __name__ == "__main__":
    sys.exit(main())
