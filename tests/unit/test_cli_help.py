"""`llmasos ... --help` is written for users: working examples, every flag explained, no internal module names."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from llmasos.cli import build_parser

INTERNAL = re.compile(r"\bllmasos\.[a-z_]+\.|\.py\b|\bregister(ed)?\b|planning/|commands/")


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    choice: argparse.ArgumentParser = sub.choices[name]
    return choice


@pytest.mark.parametrize("name", ["plan", "simulate", "report", "node-agent"])
def test_help_names_no_internal_modules_and_every_flag_has_help(name: str) -> None:
    parser = subparser(name)
    text = parser.format_help()
    assert not INTERNAL.search(text), INTERNAL.search(text)
    for action in parser._actions:
        assert action.help, f"{name} {action.option_strings} has no help"


def test_plan_help_json_examples_parse() -> None:
    text = subparser("plan").format_help()
    block = text[text.index("input line:"):text.index("(written on one line")]
    line = json.loads(" ".join(block.removeprefix("input line:").split()))
    assert set(line) == {"id", "zone", "submitted_at", "duration_seconds", "deadline", "interruptible", "forecast"}
    out = text[text.index("output line:"):].splitlines()[0]
    assert json.loads(out.removeprefix("output line:"))["segments"]
    cap = text[text.index("CAP.json:"):text.index("A bad line")]
    assert json.loads(" ".join(cap.removeprefix("CAP.json:").split()))["pools"]["a100"]["gpus"] == 16


def test_every_command_documents_exit_codes() -> None:
    assert "Exit codes of every command: 0 done; 1" in build_parser().format_help()
    for name in ("plan", "simulate", "report"):
        assert re.search(r"(?i)exit codes: 0 .*; 1 .*; 2 bad flags", subparser(name).format_help().replace("\n", " "))
