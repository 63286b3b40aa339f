"""The `llmasos` commands the user docs show run as written, and getting-started's steps stand alone."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from llmasos.cli import main

REPO = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/getting-started.md", "docs/first-llmjob.md", "docs/carbon.md")
PINNED = ["--source", "trace", "--now", "2026-12-04T18:00:00Z"]  # no network, a fixed clock


def code_blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", path.read_text(), flags=re.S)


def first_llmjob(tmp_path: Path) -> Path:
    (manifest,) = code_blocks(REPO / "docs" / "first-llmjob.md", "yaml")
    path = tmp_path / "first-llmjob.yaml"
    path.write_text(manifest)
    return path


def plan_commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in code_blocks(REPO / doc, "bash"):
            for line in block.splitlines():
                line = line.split("  #")[0].strip()
                if line.startswith("llmasos plan -f"):
                    found.append((doc, line))
    return found


@pytest.mark.parametrize(("doc", "line"), plan_commands(), ids=lambda v: str(v)[:60])
def test_documented_plan_commands_run(
    doc: str, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    job = str(first_llmjob(tmp_path))
    argv = [job if a in ("job.yaml", "first-llmjob.yaml") else a for a in shlex.split(line)[1:]]
    assert main([*argv, *PINNED]) == 0, capsys.readouterr().err


def test_first_llmjob_preview_matches_the_doc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table shown is the command's output at the pinned time, row for row and word for word."""
    assert main(["plan", "-f", str(first_llmjob(tmp_path)), *PINNED]) == 0
    shown = code_blocks(REPO / "docs" / "first-llmjob.md", "text")[0]
    assert capsys.readouterr().out == shown
    assert "`--now 2026-12-04T18:00:00Z` without a token" in (REPO / "docs" / "first-llmjob.md").read_text()


def test_getting_started_steps_create_the_namespace_they_use() -> None:
    text = (REPO / "docs" / "getting-started.md").read_text()
    helm = text[text.index("## On a real cluster, with Helm"):]
    create = "kubectl create namespace llmasos-system --dry-run=client -o yaml | kubectl apply -f -"
    blocks = re.findall(r"```bash\n(.*?)```", helm, flags=re.S)
    assert len(blocks) >= 4
    for block in blocks:
        uses = "llmasos-system" in block and "helm upgrade" not in block
        assert not uses or block.lstrip().startswith(create), f"this step needs llmasos-system:\n{block}"
