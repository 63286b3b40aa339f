"""The `llmasos` command alone, as README's "Install the CLI" gets it: a wheel built from this tree, installed into a
fresh virtualenv, runs from any directory with its shipped data (the carbon traces).

No network: the wheel is built with `pip wheel --no-build-isolation --no-index` (setuptools and wheel come from the
project's venv) and installed with `--no-index --no-deps`. Its runtime dependencies (kopf, httpx, aiohttp, pyyaml,
prometheus-client, uvloop) are not downloaded: a `.pth` file appends the project venv's site-packages *after* the
fresh venv's own, so `llmasos` itself is imported from the wheel (asserted) and only the dependencies come from the
project venv. The test checks what the wheel carries (entry point, package data), not PyPI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "NOTICE", "operator", "worker_image")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel installed; returns its bin directory."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:  # a copy, so the build leaves no build/ or egg-info in the checkout
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    wheels = root / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(wheels), "."],
                   cwd=src, check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("llmasos-*.whl")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-index", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "zz-llmasos-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir / "bin"


def run(bin_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / "llmasos"), *argv], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def test_wheel_installs_the_command(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run([str(installed / "python"), "-c", "import llmasos; print(llmasos.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed.parent)), f"llmasos imported from {where}, not from the wheel"
    for argv in (["--help"], ["plan", "--help"], ["simulate", "--help"], ["report", "--help"], ["--version"]):
        result = run(installed, tmp_path, *argv)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    assert "llmasos plan -f examples/02-deadline-deferred.yaml" in run(installed, tmp_path, "plan", "--help").stdout


def test_wheel_carries_the_carbon_traces(installed: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text((REPO / "examples" / "02-deadline-deferred.yaml").read_text())
    result = run(installed, tmp_path, "plan", "-f", "job.yaml", "--zone", "DE", "--source", "trace", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert '"source": "trace"' in result.stdout
