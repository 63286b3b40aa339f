"""`llmasos plan` (--batch and -f), run through argparse as the CLI does."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from llmasos.commands.plan import plan_batch, register
from llmasos.planning.timing.forecast import parse_instant


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="llmasos")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def batch_line(**overrides: object) -> str:
    values = [300, 280, 100, 90, 200, 310]
    line: dict[str, object] = {
        "id": "job-1",
        "zone": "DE",
        "submitted_at": "2024-03-06T00:00:00Z",
        "duration_seconds": 7200,
        "deadline": "2024-03-06T06:00:00Z",
        "interruptible": False,
        "forecast": [{"datetime": f"2024-03-06T{h:02d}:00:00Z", "carbonIntensity": v} for h, v in enumerate(values)],
    }
    line.update(overrides)
    return json.dumps(line)


def test_batch_contract(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(batch_line() + "\n\n" + batch_line(id="job-2", interruptible=True, duration_seconds=5400) + "\n")
    assert cli("plan", "--batch", str(src), "--output", str(dst)) == 0
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert out[0] == {"id": "job-1", "segments": [{"start": "2024-03-06T02:00:00Z", "end": "2024-03-06T04:00:00Z"}]}
    assert out[1]["id"] == "job-2"
    total = sum((parse_instant(s["end"]) - parse_instant(s["start"])).total_seconds() for s in out[1]["segments"])
    assert total == 5400


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a"]', "line 2: expected a JSON object"),
        (batch_line(deadline="tomorrow"), "line 2: deadline 'tomorrow' is not an ISO-8601 time"),
        (batch_line(submitted_at="2024-03-06T00:00:00"), "line 2: submitted_at"),
        (batch_line(duration_seconds=0), "line 2: duration_seconds must be a positive number"),
        (batch_line(interruptible="yes"), "line 2: interruptible must be true or false"),
        (batch_line(forecast=[{"datetime": "2024-03-06T00:00:00Z"}]), "line 2: forecast[0] must be an object"),
        (batch_line(forecast=[{"datetime": "x", "carbonIntensity": 1}]), "line 2: forecast[0].datetime"),
        (batch_line(forecast=[{"datetime": "2024-03-06T00:00:00Z", "carbonIntensity": -1}]), "line 2: intensity"),
        (json.dumps({"id": "x"}), "line 2: missing field(s): zone"),
    ],
)
def test_batch_bad_line_names_the_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(batch_line() + "\n" + line + "\n")
    assert cli("plan", "--batch", str(src), "--output", str(dst)) == 2  # bad input: EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not dst.exists()


def test_batch_nulls_are_gaps_and_impossible_deadlines_warn() -> None:
    forecast = [{"datetime": "2024-03-06T00:00:00Z", "carbonIntensity": None}]
    out, errors, warnings = plan_batch(
        [batch_line(forecast=forecast), batch_line(id="late", deadline="2024-03-06T01:00:00Z")]
    )
    assert errors == []
    assert len(out) == 2
    assert any("no forecast values" in w for w in warnings)
    assert any("line 2 (late): cannot finish" in w for w in warnings)


MANIFEST = """
apiVersion: llmasos.io/v1alpha1
kind: LLMJob
metadata: {name: night-run, creationTimestamp: "2026-11-25T13:00:00Z"}
spec:
  model: {builtin: gpt-small}
  parallelism: {nodes: 1, gpusPerNode: 4}
  placement: {nodePools: [a100, h100, l4]}
  carbon: {policy: deadline, deadline: "2026-11-26T13:00:00Z", expectedDuration: 3h, zone: US-CAL-CISO}
"""


def test_plan_file_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(MANIFEST)
    assert cli("plan", "-f", str(path), "-o", "json", "--source", "trace", "--now", "2026-11-25T13:10:00Z") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "night-run"
    assert data["zone"] == "US-CAL-CISO"
    assert data["source"] == "trace"
    assert data["expectedSavingsPercent"] >= 0
    assert parse_instant(data["endAt"]) <= parse_instant("2026-11-26T12:45:00Z")


def test_plan_file_table_with_pools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(MANIFEST.replace(", zone: US-CAL-CISO", ""))
    pools = Path(__file__).resolve().parents[3] / "e2e" / "node-pools.yaml"
    assert (
        cli("plan", "-f", str(path), "--pools", str(pools), "--now", "2026-11-25T13:10:00Z", "--source", "trace") == 0
    )
    out = capsys.readouterr().out
    assert "night-run" in out
    assert "Pool" in out
    assert "Savings" in out


def test_plan_file_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(MANIFEST.replace("expectedDuration: 3h, ", ""))
    assert cli("plan", "-f", str(path), "--source", "static") == 2
    assert "spec.carbon.expectedDuration" in capsys.readouterr().err
    path.write_text("kind: Pod\n")
    assert cli("plan", "-f", str(path)) == 2
    assert "holds no LLMJob" in capsys.readouterr().err


def test_the_plan_table_says_replayed_data_and_a_rescaled_duration(capsys: pytest.CaptureFixture[str],
                                                                    tmp_path: Path) -> None:
    import yaml

    from llmasos.cli import main

    repo = Path(__file__).resolve().parents[3]
    pools = yaml.safe_load((repo / "e2e" / "node-pools.yaml").read_text())
    pools["pools"] = [p for p in pools["pools"] if p["name"] == "l4"]  # an L4: 10m on the A100 reference rescales
    (tmp_path / "pools.yaml").write_text(yaml.safe_dump(pools))
    code = main(["plan", "-f", str(repo / "examples" / "02-deadline-deferred.yaml"), "--pools",
                 str(tmp_path / "pools.yaml")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Forecast      historical replay, not a forecast" in out
    assert "Duration      expectedDuration 10m is read as run time on the reference GPU" in out
