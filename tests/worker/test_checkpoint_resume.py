"""SIGTERM mid-run -> checkpoint within the grace period -> resume gives bit-identical losses and weights.

Two DDP ranks, so the launcher's signal forwarding and the ranks' agreement on the stop step are exercised too.

Also exercises the progress endpoint the way the node agent uses it: the test decides when to send SIGTERM by
reading ``llmasos_worker_step`` from ``/metrics`` while the job runs.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from pathlib import Path

from llmasos.api.worker_contract import EXIT_SUSPENDED, FinalProgress, parse_final_progress
from tests.worker.helpers import free_port, load_weights, parse, run_worker, start_worker, worker_env

STEPS = 60
# Dropout on: its masks must also come out the same after a resume.
BATCH = 8
CONFIG = {"steps": STEPS, "batch_size": BATCH, "log_every": 1, "checkpoint_every": 20, "seed": 3,
          "stop_check_seconds": 0.1, "model": {"dropout": 0.1}}
SEQ_LEN = 64  # gpt-tiny
GRACE_SECONDS = 30  # Kubernetes' default terminationGracePeriodSeconds
INTERRUPT_AFTER = 3


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        m = re.match(r"^(llmasos_worker_\w+)\{[^}]*\} (\S+)$", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


def _wait_for_step(port: int, proc_poll: object, minimum: int, timeout: float = 120) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc_poll() is None, "worker ended before it could be interrupted"  # type: ignore[operator]
        try:
            values = _scrape(port)
        except OSError:
            values = {}
        if values.get("llmasos_worker_step", 0) >= minimum:
            return values
        time.sleep(0.02)
    raise AssertionError("worker never reached the step to interrupt at")


def test_sigterm_checkpoint_resume_is_bit_exact(tmp_path: Path) -> None:
    reference = run_worker(worker_env("train", nproc=2, dp=2, config=CONFIG,
                                      LLMASOS_CHECKPOINT_DIR=str(tmp_path / "reference")), timeout=180)
    assert reference.returncode == 0, reference.stderr[-3000:]

    ckpt = tmp_path / "interrupted"
    port = free_port()
    log = tmp_path / "termination-log"
    log.touch()
    env = worker_env("train", nproc=2, dp=2, config=CONFIG, LLMASOS_CHECKPOINT_DIR=str(ckpt),
                     LLMASOS_PROGRESS_PORT=str(port), LLMASOS_TERMINATION_LOG=str(log))
    proc = start_worker(env, tmp_path / "first.out", tmp_path / "first.err")
    try:
        values = _wait_for_step(port, proc.poll, INTERRUPT_AFTER)
        step = values["llmasos_worker_step"]
        assert values["llmasos_worker_tokens_total"] == step * BATCH * SEQ_LEN
        assert values["llmasos_worker_loss"] > 0
        assert "llmasos_worker_gpu_energy_joules_total" not in values, "no GPU here: no energy series"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=GRACE_SECONDS)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == EXIT_SUSPENDED, (tmp_path / "first.err").read_text()[-3000:]
    assert took < GRACE_SECONDS
    first = parse((tmp_path / "first.out").read_text())
    suspended = [e for e in first if e["event"] == "suspended"]
    assert len(suspended) == 1
    stopped_at = suspended[0]["step"]
    assert step <= stopped_at < STEPS, "stopped after the step seen, before the end"
    assert suspended[0]["checkpoint"] == str(ckpt / f"step-{stopped_at:08d}")
    assert (ckpt / "latest").read_text() == f"step-{stopped_at:08d}"
    # The count at the checkpoint, for the node agent once the suspended pod has ended.
    assert parse_final_progress(log.read_text()) == FinalProgress(stopped_at * BATCH * SEQ_LEN, stopped_at, STEPS)

    resumed = run_worker(worker_env("train", nproc=2, dp=2, config=CONFIG, LLMASOS_CHECKPOINT_DIR=str(ckpt)),
                         timeout=180)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.one("start")["resumed_from"] == stopped_at

    first_losses = {e["step"]: e["loss"] for e in first if e["event"] == "step"}
    combined = {**first_losses, **resumed.losses()}
    assert sorted(combined) == list(range(1, STEPS + 1))
    assert combined == reference.losses(), "the loss curve must be bit-identical"
    assert resumed.one("done")["digest"] == reference.one("done")["digest"]
    ref_w, res_w = load_weights(tmp_path / "reference" / "model.pt"), load_weights(ckpt / "model.pt")
    assert all(bool((ref_w[k] == res_w[k]).all()) for k in ref_w), "weights must be bit-identical"

    # A pod restarted after completion finds the final checkpoint and exits 0 at once with the same model; the
    # checkpoint is layout-independent, so one process can read what two DDP ranks wrote.
    again = run_worker(worker_env("train", config=CONFIG, LLMASOS_CHECKPOINT_DIR=str(ckpt)), timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.one("start")["resumed_from"] == STEPS
    assert again.of("step") == []
    assert again.one("done")["digest"] == reference.one("done")["digest"]
