"""Spec parsing, conditions, durations, settings and the generated CRD (a stale crds/ file fails here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmasos.api.crd import GENERATED_FILES, build_llmjob_crd
from llmasos.api.durations import format_duration, parse_duration
from llmasos.api.spec import parse_spec
from llmasos.errors import ConfigError, SpecError
from llmasos.settings import load_settings
from tests.unit.builders import make_raw

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("filename", sorted(GENERATED_FILES))
def test_committed_crd_files_are_not_stale(filename: str) -> None:
    committed = (REPO / "crds" / filename).read_text()
    assert committed == GENERATED_FILES[filename](), f"crds/{filename} is stale: run `make crds`"


def test_every_schema_field_has_a_description() -> None:
    schema = build_llmjob_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing: list[str] = []

    def walk(node: dict[str, object], path: str) -> None:
        for name, child in (node.get("properties") or {}).items():  # type: ignore[attr-defined]
            if name != "metadata" and not child.get("description"):
                missing.append(f"{path}.{name}")
            walk(child, f"{path}.{name}")
        items = node.get("items")
        if isinstance(items, dict):
            walk(items, f"{path}[]")

    walk(schema, "")
    assert missing == []


def test_printer_columns() -> None:
    columns = build_llmjob_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [c["name"] for c in columns if not c.get("priority")]
    wide = [c["name"] for c in columns if c.get("priority") == 1]
    assert default == ["Phase", "Workers", "Progress", "Planned Start", "Started", "Energy", "CO2e", "Age"]
    assert wide == ["Saved CO2e", "Strategy", "Pool", "Zone", "Deadline"]
    by_name = {c["name"]: c["jsonPath"] for c in columns}
    # Planned and actual start are two facts; the human-scaled values carry their unit (status.carbon.display).
    assert by_name["Planned Start"] == ".status.plan.startAt"
    assert by_name["Started"] == ".status.startTime"
    assert by_name["Energy"] == ".status.carbon.display.energy"
    assert by_name["CO2e"] == ".status.carbon.display.emissions"
    assert by_name["Progress"] == ".status.progress.display"


def test_parse_defaults_and_derived_data_parallel() -> None:
    spec = parse_spec(make_raw(nodes=2, gpus=4, strategy="tensor", tensorParallel=4))
    assert spec.parallelism.data_parallel == 2
    assert spec.task == "train"
    assert spec.carbon.policy == "immediate"
    assert spec.backoff_limit == 2


@pytest.mark.parametrize(("raw", "field"), [
    ({"parallelism": {"nodes": 1, "gpusPerNode": 4, "tensorParallel": 3}}, "spec.parallelism.tensorParallel"),
    ({"parallelism": {"nodes": 1, "gpusPerNode": 4, "dataParallel": 3}}, "spec.parallelism.dataParallel"),
    ({"carbon": {"policy": "deadline", "deadline": "2030-01-01T00:00:00"}}, "spec.carbon.deadline"),
    ({"carbon": {"maxDelay": "6 hours"}}, "spec.carbon.maxDelay"),
    ({"maxRuntime": "1y"}, "spec.maxRuntime"),
])
def test_parse_rejects_what_the_schema_cannot_see(raw: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"model": {"builtin": "gpt-tiny"}, **raw})
    assert err.value.field == field


def test_deadline_from_max_delay() -> None:
    spec = parse_spec({"model": {"builtin": "gpt-tiny"}, "carbon": {"policy": "deadline", "maxDelay": "6h",
                                                                   "expectedDuration": "1h"}})
    created = datetime(2026, 1, 1, tzinfo=UTC)
    assert spec.carbon.deadline_for(created) == created + timedelta(hours=6)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("1h30m", 5400), ("2d", 172800), ("1.5h", 5400),
                                               ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "6", "6 hours", "-1h", "h"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


def test_format_duration_round_trips() -> None:
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert parse_duration(format_duration(timedelta(seconds=93784))) == timedelta(seconds=93784)


def test_settings_precedence_file_then_env(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("workerImage: registry/worker:2\ndefaultPue: 1.4\nnamespaces: [a, b]\n")
    s = load_settings(f, env={"LLMASOS_DEFAULT_PUE": "1.1"})
    assert s.worker_image == "registry/worker:2"
    assert s.default_pue == 1.1
    assert s.namespaces == ("a", "b")


@pytest.mark.parametrize(("content", "env", "message"), [
    ("bogus: 1\n", {}, "unknown setting 'bogus'"),
    # Errors name what the user wrote: the variable and the Helm value behind it, never the Python field.
    ("", {"LLMASOS_DEFAULT_PUE": "0.5"}, r"^LLMASOS_DEFAULT_PUE \(environment, Helm value carbon.pue\) must be"),
    ("", {"LLMASOS_METRICS_PORT": "http"}, r"LLMASOS_METRICS_PORT \(environment, Helm value operator.metricsPort\)"),
    ("defaultPue: 9\n", {}, r"^defaultPue \(settings file .*s.yaml\) must be between 1.0 and 3.0, got 9.0$"),
    ("- a\n", {}, "must be a mapping"),
])
def test_bad_settings_name_the_field(tmp_path: Path, content: str, env: dict[str, str], message: str) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(f, env=env)


def test_committed_reference_doc_is_not_stale() -> None:
    from llmasos.api.reference import render_reference

    committed = (REPO / "docs" / "reference" / "llmjob.md").read_text()
    assert committed == render_reference(), "docs/reference/llmjob.md is stale: run `make crds`"


@pytest.mark.parametrize(("raw", "policy", "fraction", "limit"), [
    ("none", "none", None, None), ("energyOptimal", "energyOptimal", None, None),
    ("fraction:0.8", "fraction", 0.8, None), ("limit:300", "limit", None, 300)])
def test_default_power_policy(raw: str, policy: str, fraction: float | None, limit: int | None) -> None:
    power = load_settings(None, env={"LLMASOS_DEFAULT_POWER_POLICY": raw}).default_power()
    assert (power.policy, power.fraction, power.limit_watts) == (policy, fraction, limit)


@pytest.mark.parametrize("raw", ["fraction", "fraction:2", "limit:x", "none:3", "turbo"])
def test_bad_default_power_policy(raw: str) -> None:
    where = r"^LLMASOS_DEFAULT_POWER_POLICY \(environment, Helm value power\.defaultPolicy\)"
    with pytest.raises(ConfigError, match=where):
        load_settings(None, env={"LLMASOS_DEFAULT_POWER_POLICY": raw})
