"""`llmasos node-agent` refuses a bad flag in one line with exit 2, before it touches a GPU or starts a thread.

Before, `--interval 0` ran a busy loop, `--report-interval nan` was taken, and a bad port, an unknown simulated
product or a missing node name ended in a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos.cli import main


def base(tmp_path: Path) -> list[str]:
    return ["node-agent", "--gpu-backend", "sim", "--node-name", "n1", "--pods-file", str(tmp_path / "pods.json"),
            "--report-file", str(tmp_path / "report.json"), "--state-file", str(tmp_path / "state.json"),
            "--metrics-port", "0"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--interval", "0"], "argument --interval: '0' is not a number of seconds > 0"),
    (["--interval", "-1"], "argument --interval: '-1' is not a number of seconds > 0"),
    (["--report-interval", "nan"], "argument --report-interval: 'nan' is not a number of seconds > 0"),
    (["--search-window", "0"], "argument --search-window: '0' is not a number of seconds > 0"),
    (["--search-warmup", "-1"], "argument --search-warmup: '-1' is not a number of seconds >= 0"),
    (["--sim-counter-reset-s", "inf"], "argument --sim-counter-reset-s: 'inf' is not a number of seconds > 0"),
    (["--sim-tokens-per-step", "-3"], "argument --sim-tokens-per-step: '-3' is not a number of tokens >= 0"),
    (["--metrics-port", "70000"], "argument --metrics-port: '70000' is not a port (0-65535"),
    (["--metrics-port", "-1"], "argument --metrics-port: '-1' is not a port"),
    (["--sim-gpus", "0"], "argument --sim-gpus: '0' is not a GPU count >= 1"),
    (["--sim-product", "nvidia-xyz"], "argument --sim-product: GPU product 'nvidia-xyz' is not in the catalog"),
    (["--log-level", "chatty"], "argument --log-level: invalid choice: 'CHATTY'"),
])
def test_a_bad_flag_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*base(tmp_path), *flags])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "state.json").exists()


def test_no_node_name_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    argv = [a for a in base(tmp_path) if a not in ("--node-name", "n1")]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: node-agent needs --node-name (or $NODE_NAME from the downward API)")


def test_good_values_parse_as_before(tmp_path: Path) -> None:
    """The chart's and the tests' spellings: lowercase log level, a product alias, fractional seconds."""
    from llmasos.cli import build_parser

    args = build_parser().parse_args([*base(tmp_path), "--interval", "0.5", "--log-level", "warning",
                                      "--sim-product", "NVIDIA-L4", "--search-warmup", "0", "--metrics-port", "9400"])
    assert (args.interval, args.log_level, args.sim_product, args.search_warmup, args.metrics_port) == (
        0.5, "WARNING", "NVIDIA-L4", 0.0, 9400)


@pytest.mark.parametrize(("flags", "reader"), [([], "SimProgressReader"),
                                               (["--sim-worker-metrics"], "WorkerCountsOverlay")])
def test_the_sim_backend_reads_real_workers_metrics_only_when_told(tmp_path: Path, flags: list[str],
                                                                   reader: str) -> None:
    """Fake pods (kwok) run no worker: the simulation answers; real workers on simulated GPUs answer for their own
    counts (the local real node's chart values pass the flag)."""
    from llmasos.agent.main import build_agent
    from llmasos.agent.pods import PodsFile
    from llmasos.cli import build_parser

    args = build_parser().parse_args([*base(tmp_path), *flags])
    agent = build_agent(args, PodsFile(tmp_path / "pods.json"), None)
    assert type(agent._progress).__name__ == reader
