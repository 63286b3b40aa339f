"""Hugging Face causal LMs from a local directory: finetuned with DDP, served, never downloaded.

`transformers` is in the worker extra, so these tests always run with it. The models are created here from tiny
random GPT-2 configs (and, for one, a byte-pair tokenizer trained on the shipped corpus) and saved to temporary
directories. The worker processes get an empty Hugging Face cache and a hub endpoint on a closed loopback port:
any attempt to download would fail the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llmasos_worker.corpus import CORPUS
from llmasos_worker.loading import ByteTokenizer, HFCausalLM, HFTokenizer, load_model
from tests.worker.helpers import free_port, run_worker, worker_env

BPE_VOCAB = 300


def _tiny_gpt2(directory: Path, vocab_size: int = 256) -> None:
    config = transformers.GPT2Config(vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=1, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(str(directory))


def _bpe_tokenizer(directory: Path) -> None:
    """A byte-level BPE tokenizer trained on the shipped corpus, saved as transformers saves any fast tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([CORPUS], trainers.BpeTrainer(
        vocab_size=BPE_VOCAB, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(
        str(directory))


def _offline(tmp_path: Path) -> dict[str, str]:
    """No cache to fall back on and a hub that refuses connections: only local files can work."""
    return {"HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "HF_HUB_OFFLINE": "0"}


def test_hf_model_with_its_tokenizer_finetunes_with_ddp_and_serves(tmp_path: Path) -> None:
    model = tmp_path / "gpt2-tiny"
    _tiny_gpt2(model, vocab_size=BPE_VOCAB)
    _bpe_tokenizer(model)
    out = tmp_path / "out"
    tune = run_worker(worker_env("finetune", nproc=2, dp=2, LLMASOS_MODEL_PATH=str(model), **_offline(tmp_path),
                                 config={"steps": 8, "batch_size": 4, "lr": 0.01, "seq_len": 32,
                                         "output_dir": str(out)}))
    assert tune.returncode == 0, tune.stderr[-3000:]
    start = tune.one("start")
    assert (start["world_size"], start["dp"], start["model"]) == (2, 2, str(model))
    losses = tune.losses()
    assert losses[8] < losses[1]
    done = tune.one("done")
    saved = out / "hf-model"
    assert done["model_path"] == str(saved)
    assert done["eval_loss"] < losses[1]
    assert (saved / "config.json").is_file()
    assert (saved / "tokenizer.json").is_file()  # the copy serves with the tokenizer it was tuned with
    serve = run_worker(worker_env("inference", LLMASOS_MODEL_PATH=done["model_path"], **_offline(tmp_path),
                                  config={"prompts": ["The river ", "Wind turbines "], "max_new_tokens": 4}))
    assert serve.returncode == 0, serve.stderr[-3000:]
    result = serve.one("done")
    assert result["new_tokens"] == 8
    assert not (tmp_path / "hf-home" / "hub").exists()  # nothing was cached from a hub


def test_hf_model_without_tokenizer_loads_byte_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process: the adapter gives the same logits as the transformers model, bytes as tokens."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # load_model sets it; monkeypatch restores it afterwards
    model = tmp_path / "gpt2-tiny"
    _tiny_gpt2(model)
    loaded = load_model("gpt-tiny", str(model), {}, seed=0)
    assert isinstance(loaded.module, HFCausalLM)
    assert isinstance(loaded.tokenizer, ByteTokenizer)
    assert (loaded.config, loaded.seq_len, loaded.builtin) == (None, 64, False)
    x = ByteTokenizer().encode("The river runs").unsqueeze(0)
    reference = transformers.GPT2LMHeadModel.from_pretrained(str(model), local_files_only=True).eval()
    loaded.module.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.module(x), reference(input_ids=x).logits)


def test_hf_tokenizer_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tmp_path / "gpt2-tiny"
    _tiny_gpt2(model, vocab_size=BPE_VOCAB)
    _bpe_tokenizer(model)
    loaded = load_model("gpt-tiny", str(model), {}, seed=0)
    assert isinstance(loaded.tokenizer, HFTokenizer)
    assert loaded.tokenizer.vocab_size == BPE_VOCAB
    ids = loaded.tokenizer.encode("The river runs to the sea.")
    assert len(ids) < len("The river runs to the sea.")  # merges learned from the corpus
    assert loaded.tokenizer.decode(ids.tolist()) == "The river runs to the sea."


def test_hf_tokenizer_larger_than_model_is_a_config_error(tmp_path: Path) -> None:
    model = tmp_path / "gpt2-tiny"
    _tiny_gpt2(model, vocab_size=256)
    _bpe_tokenizer(model)
    run = run_worker(worker_env("inference", LLMASOS_MODEL_PATH=str(model), **_offline(tmp_path)))
    assert run.returncode == 2
    assert "more tokens than the model's vocab_size" in run.stderr


@pytest.mark.parametrize(("task", "tp", "pp", "message"), [
    ("train", 2, 1, "tensor and pipeline parallel need a built-in model"),
    ("finetune", 1, 2, "tensor and pipeline parallel need a built-in model"),
    ("inference", 2, 1, "tensor and pipeline parallel need a built-in model"),
    ("compress", 1, 1, "compress supports built-in models"),
])
def test_hf_model_refuses_what_needs_a_builtin_model(tmp_path: Path, task: str, tp: int, pp: int,
                                                      message: str) -> None:
    """Judged from the directory alone, before torch is imported: the pod fails in well under a second."""
    model = tmp_path / "gpt2-tiny"
    _tiny_gpt2(model)
    nproc = tp * pp
    run = run_worker(worker_env(task, nproc=nproc, tp=tp, pp=pp, LLMASOS_MODEL_PATH=str(model),
                                config={"batch_size": 4}, **_offline(tmp_path)))
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
