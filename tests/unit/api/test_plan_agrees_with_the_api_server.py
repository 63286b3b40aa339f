"""`llmasos plan -f` refuses, with exit 2 and one line naming the field, what the API server refuses (#20 items 3, 5).

The messages are the CRD's own (CEL rules) or the API server's kind of message (unknown field, enum); the same
manifests are applied to a real API server in tests/chaos/test_crd_fuzz.py and tests/integration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmasos.cli import main

NOW = ["--now", "2026-12-04T14:00:00Z"]


def write(tmp_path: Path, spec: dict[str, Any]) -> str:
    doc = {"apiVersion": "llmasos.io/v1alpha1", "kind": "LLMJob", "metadata": {"name": "j"},
           "spec": {"model": {"builtin": "gpt-tiny"}, **spec}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.parametrize(("spec", "line"), [
    ({"carbon": {"polcy": "deadline", "zone": "DE"}},
     'error: unknown field "spec.carbon.polcy"; did you mean policy? (spec.carbon.polcy)'),
    ({"carbon": {"policy": "deadline", "maxDelay": "6h", "expectedDurration": "1h", "zone": "DE"}},
     'error: unknown field "spec.carbon.expectedDurration"; did you mean expectedDuration? '
     "(spec.carbon.expectedDurration)"),
    ({"model": {"builtin": "llama-7b"}, "carbon": {"zone": "DE"}},
     "error: must be one of gpt-tiny, gpt-small, got 'llama-7b' (spec.model.builtin)"),
    ({"parallelism": {"strategy": "ddp", "gpusPerNode": 2, "tensorParallel": 2}, "carbon": {"zone": "DE"}},
     "error: strategy ddp and ray take no tensorParallel or pipelineParallel degree; use hybrid "
     "(spec.parallelism.strategy)"),
    ({"carbon": {"policy": "deadline", "deadline": "2026-12-04T10:00:00Z", "expectedDuration": "1h", "zone": "DE"}},
     "error: carbon.deadline 2026-12-04T10:00:00Z is not after the LLMJob's creation (2026-12-04T14:00:00Z): a "
     "deadline in the past can never be met; set a later deadline, or maxDelay (spec.carbon.deadline)"),
])
def test_plan_refuses_with_exit_2_and_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: dict[str, Any], line: str) -> None:
    assert main(["plan", "-f", write(tmp_path, spec), *NOW]) == 2
    assert capsys.readouterr().err.strip() == line


def test_an_unknown_zone_is_refused_not_averaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", write(tmp_path, {}), "--zone", "XX-NOWHERE", *NOW]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown carbon zone 'XX-NOWHERE': no trace and no annual average for it")
    assert "DE, SE, US-CAL-CISO, US-MIDA-PJM, US-NE-ISNE, US-TEX-ERCO" in err


def test_zone_case_does_not_change_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"carbon": {"policy": "deadline", "maxDelay": "12h", "expectedDuration": "1h"}}
    outputs = []
    for zone in ("de", "DE"):
        assert main(["plan", "-f", write(tmp_path, spec), "--zone", zone, *NOW, "-o", "json"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def test_the_plan_data_says_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"carbon": {"policy": "deadline", "maxDelay": "12h", "expectedDuration": "1h", "zone": "DE"}}
    assert main(["plan", "-f", write(tmp_path, spec), *NOW, "-o", "json", "--source", "trace"]) == 0
    out = capsys.readouterr().out
    assert '"dataKind": "replay"' in out
    assert '"dataNote": "historical replay, not a forecast' in out
