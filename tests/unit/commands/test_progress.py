"""Issue 20, item 10: long CLI work (simulate, report, `make images`) shows progress on a terminal, and nothing of it
reaches a pipe or a CI log."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import yaml

from e2e.images.build import stage_say
from llmasos.cli import main
from llmasos.commands.progress import Progress, progress_enabled, track
from tests.unit.commands.test_simulate_command import JOBS_CSV
from tests.unit.report.sample import sample_jobs


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(("tty", "env", "shown"), [
    (True, {}, True),
    (True, {"CI": "false"}, True),
    (True, {"CI": "true"}, False),
    (True, {"CI": "1"}, False),
    (False, {}, False),
])
def test_progress_only_on_a_terminal_outside_ci(tty: bool, env: dict[str, str], shown: bool) -> None:
    stream = Tty() if tty else io.StringIO()
    assert progress_enabled(stream, env) is shown
    with Progress("simulate", 4, stream=stream, env=env) as bar:
        for _ in range(4):
            bar.advance()
    assert bool(stream.getvalue()) is shown


def test_bar_counts_throttles_and_erases_itself() -> None:
    stream, clock = Tty(), Clock()
    with Progress("simulate", 500, stream=stream, env={}, clock=clock) as bar:
        for _ in range(250):
            bar.advance()  # same instant: drawn once at the start, not 250 times
        assert stream.getvalue().count("\r") == 1
        clock.t += 72
        bar.advance()
        assert bar.line() == "simulate [############------------] 251/500 01:12"
    out = stream.getvalue()
    assert "251/500" in out
    assert out.endswith("\r")  # erased: what the command prints next starts on a clean line
    assert out.rsplit("\r", 2)[-2].strip() == ""


def test_track_and_stage() -> None:
    stream = Tty()
    assert list(track([1, 2, 3], "items", stream=stream, env={})) == [1, 2, 3]
    assert "3/3" in stream.getvalue()
    with Progress("report", stream=stream, env={}) as bar:
        bar.stage("writing into out")
        assert bar.line() == "report 00:00 writing into out"


def fake_terminal(monkeypatch: pytest.MonkeyPatch, tty: bool) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)


@pytest.mark.parametrize("tty", [True, False])
def test_simulate_shows_progress_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], tty: bool) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(JOBS_CSV)
    fake_terminal(monkeypatch, tty)
    assert main(["simulate", "--zone", "US-CAL-CISO", "--jobs", str(jobs), "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert ("simulate [" in err and "3/3" in err) is tty
    if not tty:
        assert err == ""
    assert "\r" not in out  # stdout is the same either way
    assert "wrote " in out


@pytest.mark.parametrize("tty", [True, False])
def test_report_shows_its_stages_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], tty: bool) -> None:
    export = tmp_path / "jobs.yaml"
    export.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", **sample_jobs()}))
    fake_terminal(monkeypatch, tty)
    assert main(["report", "-f", str(export), "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert ("report 00:00 building the report over" in err) is tty
    assert ("writing into" in err) is tty
    if not tty:
        assert err == ""
    assert "\r" not in out


def test_image_build_stages_are_numbered_and_timed_on_a_terminal() -> None:
    stream, clock = Tty(), Clock()
    say = stage_say(stream, {}, clock)
    say("building the base image")
    clock.t += 75
    say("building localhost/llmasos/operator:abc")
    assert stream.getvalue().splitlines() == ["[images 1 +00:00] building the base image",
                                              "[images 2 +01:15] building localhost/llmasos/operator:abc"]
    plain = io.StringIO()
    stage_say(plain, {"CI": "true"})("building the base image")
    assert plain.getvalue() == "[images] building the base image\n"
