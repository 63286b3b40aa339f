"""A worker SIGKILLed in the middle of writing a checkpoint resumes from the last complete one, bit-exactly.

Real `llmasos-worker` processes on CPU (gpt-tiny, one rank). A `sitecustomize` hook on PYTHONPATH (test-only, the
worker is unchanged) kills the rank with SIGKILL at an exact point of the checkpoint at step 20:
  * torn     - the staging directory holds a half-written shard, nothing renamed yet;
  * shards   - every shard written to the staging directory, not yet renamed into place;
  * pointer  - the step directory renamed into place, the `latest` pointer not yet replaced;
  * final    - the final checkpoint at the last step (shards written, not renamed).
A second run on the same volume must resume from what `latest` names (the last complete checkpoint), and the final
weights must be bit-identical to a run that was never interrupted. `make test` runs torn and pointer; `make chaos`
all four.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.worker.helpers import WORKER, load_weights, parse, run_worker, worker_env

STEPS, EVERY = 30, 10
CONFIG = {"steps": STEPS, "batch_size": 4, "log_every": 1, "checkpoint_every": EVERY, "seed": 5,
          "keep_checkpoints": 2}

HOOK = '''
import os, signal

_step = int(os.environ["CHAOS_KILL_STEP"])
_where = os.environ["CHAOS_KILL_WHERE"]
_name = f"step-{_step:08d}"


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _install():
    import llmasos_worker.checkpoint as ck

    real_save = ck.state_dict_saver.save

    def save(state, *args, checkpoint_id=None, **kwargs):
        if str(checkpoint_id).endswith(f".{_name}.tmp"):
            if _where == "torn":
                os.makedirs(checkpoint_id, exist_ok=True)
                with open(os.path.join(checkpoint_id, "__0_0.distcp"), "wb") as f:
                    f.write(b"half a shard")
                _die()
            result = real_save(state, *args, checkpoint_id=checkpoint_id, **kwargs)
            if _where in ("shards", "final"):
                _die()
            return result
        return real_save(state, *args, checkpoint_id=checkpoint_id, **kwargs)

    ck.state_dict_saver.save = save
    real_pointer = ck._atomic_write

    def atomic_write(path, text):
        if _where == "pointer" and text == _name:
            _die()
        real_pointer(path, text)

    ck._atomic_write = atomic_write


if os.environ.get("LLMASOS_TASK"):
    _install()
'''

CASES = {"torn": (20, 10), "shards": (20, 10), "pointer": (20, 10), "final": (STEPS, 20)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("reference")
    run = run_worker(worker_env("train", config=CONFIG, LLMASOS_CHECKPOINT_DIR=str(out)), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return {"losses": run.losses(), "digest": run.one("done")["digest"], "weights": load_weights(out / "model.pt")}


@pytest.mark.parametrize("where", [pytest.param(w, marks=[pytest.mark.heavy] if w in ("shards", "final") else [])
                                   for w in sorted(CASES)])
def test_kill_mid_checkpoint_resumes_from_last_complete(tmp_path: Path, reference: dict[str, object],
                                                        where: str) -> None:
    kill_step, resume_step = CASES[where]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    ckpt = tmp_path / "ckpt"
    env = worker_env("train", config=CONFIG, LLMASOS_CHECKPOINT_DIR=str(ckpt), CHAOS_KILL_STEP=str(kill_step),
                     CHAOS_KILL_WHERE=where)
    env["PYTHONPATH"] = f"{hook}:{env.get('PYTHONPATH', '')}"
    killed = subprocess.run(WORKER, env=env, capture_output=True, text=True, timeout=300, check=False,
                            start_new_session=True)
    assert killed.returncode != 0, f"the hook must have killed the rank ({where})"
    assert not any(e["event"] == "done" for e in parse(killed.stdout))
    assert (ckpt / "latest").read_text() == f"step-{resume_step:08d}", "latest still names the complete one"

    resumed = run_worker(worker_env("train", config=CONFIG, LLMASOS_CHECKPOINT_DIR=str(ckpt)), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.one("start")["resumed_from"] == resume_step
    losses = resumed.losses()
    ref_losses = reference["losses"]
    assert isinstance(ref_losses, dict)
    assert {s: ref_losses[s] for s in losses} == losses, "losses after the resume are bit-identical"
    assert resumed.one("done")["digest"] == reference["digest"]
    ref_w, res_w = reference["weights"], load_weights(ckpt / "model.pt")
    assert isinstance(ref_w, dict)
    assert all(bool((ref_w[k] == res_w[k]).all()) for k in ref_w), "weights must be bit-identical"
    assert not list(ckpt.glob(".*.tmp")), "the torn staging directory is cleaned up by the next save"
