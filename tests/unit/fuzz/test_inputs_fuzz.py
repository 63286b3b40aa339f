"""`llmasos plan --batch` lines and operator settings files of any shape: a result or one clear error, never a crash.

Hypothesis draws near-valid inputs (right keys, wrong types and values, NaN and infinities, broken JSON/YAML); the
contract is the one the CLI documents: bad batch lines are reported as `line N: ...` (nothing is written), and a
bad settings file raises ConfigError naming the setting.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from llmasos.commands.plan import plan_batch
from llmasos.errors import ConfigError
from llmasos.settings import Settings, _camel, load_settings

scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=12))
instants = st.sampled_from(["2026-03-01T12:00:00Z", "2026-03-01T18:00:00+00:00", "2026-03-02T00:00:00Z",
                            "2026-02-30T00:00:00Z", "yesterday", "", "2026-03-01T12:00:00"]) | st.text(max_size=8)
points = st.fixed_dictionaries({}, optional={"datetime": instants, "carbonIntensity": scalars})
batch_objects = st.fixed_dictionaries({}, optional={
    "id": scalars, "zone": scalars, "submitted_at": instants | scalars, "deadline": instants | scalars,
    "duration_seconds": scalars, "interruptible": scalars, "forecast": st.lists(points, max_size=6) | scalars})


def _dump(obj: Any) -> str:
    return json.dumps(obj, allow_nan=True)


batch_lines = batch_objects.map(_dump) | st.text(max_size=40) | scalars.map(_dump)


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(batch_lines, min_size=1, max_size=5))
def test_plan_batch_never_crashes_and_names_the_line(lines: list[str]) -> None:
    out, errors, warnings = plan_batch(lines)
    for error in errors:
        assert error.startswith("line "), error
        number = int(error.split(":", 1)[0].split()[1])
        assert 1 <= number <= len(lines)
        assert "Traceback" not in error
    for line in out:
        assert {"id", "segments"} <= set(json.loads(line))
    assert len(out) + len(errors) == sum(1 for line in lines if line.strip())
    assert all(w.startswith("line ") for w in warnings)


def test_plan_batch_cli_reports_bad_lines_without_traceback(tmp_path: Path) -> None:
    good = {"id": "a", "zone": "DE", "submitted_at": "2026-03-01T12:00:00Z", "deadline": "2026-03-01T20:00:00Z",
            "duration_seconds": 3600, "forecast": [{"datetime": "2026-03-01T12:00:00Z", "carbonIntensity": 300}]}
    batch = tmp_path / "in.jsonl"
    batch.write_text("\n".join([json.dumps(good), "{not json", json.dumps({**good, "duration_seconds": "NaN"}),
                                json.dumps({**good, "forecast": [{"datetime": "x", "carbonIntensity": 1}]})]) + "\n")
    out = tmp_path / "out.jsonl"
    run = subprocess.run([sys.executable, "-m", "llmasos.cli", "plan", "--batch", str(batch), "--output", str(out)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2  # bad input: EXIT_USAGE
    assert "Traceback" not in run.stderr
    for n in (2, 3, 4):
        assert f"line {n}:" in run.stderr, run.stderr
    assert not out.exists(), "nothing is written when a line is bad"


SETTING_NAMES = [f.name for f in Settings.__dataclass_fields__.values()]
setting_values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=6), scalars, max_size=3)
documents = st.dictionaries(st.sampled_from(SETTING_NAMES).map(_camel), setting_values, max_size=4)


@settings(max_examples=400, deadline=None)
@given(doc=documents)
def test_settings_file_is_loaded_or_rejected_naming_the_setting(doc: dict[str, Any], tmp_path_factory: Any) -> None:
    path = tmp_path_factory.mktemp("settings") / "settings.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        loaded = load_settings(path, env={})
    except ConfigError as exc:
        message = str(exc)
        snake = {n for n in SETTING_NAMES if _camel(n) in doc}
        assert any(n in message or _camel(n) in message for n in snake), f"{message!r} names none of {snake}"
        return
    for name in SETTING_NAMES:
        value = getattr(loaded, name)
        if isinstance(value, float):
            assert math.isfinite(value), f"{name} accepted {value!r}"


@pytest.mark.parametrize("text", ["[1, 2", "resyncSeconds: [", "- a\n- b", "\t: x", "workerImage: {a: [}"])
def test_broken_yaml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(path, env={})


NON_FINITE = [("resyncSeconds", ".nan"), ("resyncSeconds", ".inf"), ("carbonCacheSeconds", ".inf"),
              ("carbonCacheSeconds", ".nan"), ("forecastError", ".nan"), ("metricsPort", ".inf"),
              ("healthPort", "-.inf"), ("maxWorkers", ".inf")]


@pytest.mark.parametrize(("key", "value"), NON_FINITE)
def test_non_finite_numbers_are_config_errors(tmp_path: Path, key: str, value: str) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(f"{key}: {value}\n")
    snake = next(n for n in SETTING_NAMES if _camel(n) == key)
    with pytest.raises(ConfigError, match=f"{snake}|{key}"):
        load_settings(path, env={})
