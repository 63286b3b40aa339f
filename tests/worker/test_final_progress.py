"""The worker's last count in its termination message: what the node agent reads once the pod has ended.

Real worker processes (two ranks, as in a pod with two GPUs), the termination log a temporary file standing in for
the kubelet's /dev/termination-log. Only a clean exit writes it (and a suspension, in test_checkpoint_resume.py): a
failing worker leaves it empty, so that the kubelet shows its log's tail instead (FallbackToLogsOnError).
"""

from __future__ import annotations

from pathlib import Path

from llmasos.api.worker_contract import EXIT_OK, EXIT_SUSPENDED, FinalProgress, parse_final_progress
from llmasos_worker.progress import Progress
from llmasos_worker.runtime import write_final_progress
from tests.worker.helpers import free_port, run_worker, worker_env


def test_a_finished_run_leaves_the_jobs_token_count(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.touch()
    env = worker_env(nproc=2, dp=2, config={"steps": 6, "batch_size": 4, "log_every": 3, "seed": 1},
                     LLMASOS_PROGRESS_PORT=str(free_port()), LLMASOS_TERMINATION_LOG=str(log))
    run = run_worker(env)
    assert run.returncode == EXIT_OK, run.stderr
    done = run.one("done")
    assert done["tokens"] > 0
    # The global count, as /metrics exports it, and the step the run ended at of the steps it planned.
    assert parse_final_progress(log.read_text()) == FinalProgress(done["tokens"], 6, 6)


def test_a_failing_run_leaves_it_empty(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    log.touch()
    # Found at the first step, the rank's progress endpoint up: a corpus shorter than one sequence.
    (tmp_path / "short.txt").write_text("hi")
    env = worker_env(config={"steps": 6, "corpus_path": str(tmp_path / "short.txt")},
                     LLMASOS_PROGRESS_PORT=str(free_port()), LLMASOS_TERMINATION_LOG=str(log))
    run = run_worker(env)
    assert run.one("start")["resumed_from"] == 0
    assert run.returncode not in (EXIT_OK, EXIT_SUSPENDED), run.stdout + run.stderr
    assert "shorter than seq_len" in run.stderr
    assert log.read_text() == ""


def test_written_only_where_the_kubelet_made_the_file(tmp_path: Path) -> None:
    progress = Progress()
    progress.update(60, 245760)
    assert not write_final_progress(progress, str(tmp_path / "absent"))
    assert not (tmp_path / "absent").exists()  # outside a pod nothing is created
    (tmp_path / "present").touch()
    assert write_final_progress(progress, str(tmp_path / "present"))
    assert parse_final_progress((tmp_path / "present").read_text()) == FinalProgress(245760, 60, None)
    # The kubelet puts the runtime's own message first when there is one.
    progress.plan(100)
    assert write_final_progress(progress, str(tmp_path / "present"))
    assert parse_final_progress("Completed: " + (tmp_path / "present").read_text()) == FinalProgress(245760, 60, 100)
    assert parse_final_progress("Traceback (most recent call last): {not json") is None
    assert parse_final_progress('{"tokens": 5}') is None  # someone else's JSON
