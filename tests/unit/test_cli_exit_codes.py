"""One exit-code scheme for every `llmasos` command: 0 done, 1 the work failed, 2 bad flags or input; errors are one
line on stderr, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos.cli import main


@pytest.mark.parametrize("argv", [["plan", "--bogus"], ["simulate", "--zone", "DE"], ["report", "--nope"], ["nope"]])
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_unwritable_output_exits_1_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["docs", "--write", str(blocker / "ref.md")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: cannot write {blocker / 'ref.md'}: Not a directory\n"
    assert main(["crd", "--write", str(blocker / "crds")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot write ")


def test_bad_input_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    for argv in (["plan", "-f", str(missing)], ["report", "-f", str(missing), "--out", str(tmp_path / "o")],
                 ["simulate", "--zone", "DE", "--jobs", str(missing), "--out", str(tmp_path / "o")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err == f"error: cannot read {missing}: No such file or directory\n", argv


def test_operator_without_a_readable_kubeconfig_exits_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found before any handler runs; it was a traceback (exit 1)."""
    missing = tmp_path / "kubeconfig"
    assert main(["operator", "--kubeconfig", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read kubeconfig {missing}: ")
    assert err.count("\n") == 1
