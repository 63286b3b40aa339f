"""`llmasos plan --batch IN --output OUT [--capacity CAP]`: the batch contract of issue 19, through the CLI."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from llmasos.planning.timing.capacity import capacity_violations
from llmasos.planning.timing.forecast import parse_instant
from tests.unit.commands.test_plan_command import batch_line, cli

DATA = Path(__file__).parent / "data"
START, END = "2024-03-06T00:00:00Z", "2024-03-06T03:00:00Z"


def run(tmp_path: Path, lines: list[str], capacity: object | None) -> tuple[int, list[dict[str, object]]]:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(f"{line}\n" for line in lines))
    argv = ["plan", "--batch", str(src), "--output", str(dst)]
    if capacity is not None:
        cap = tmp_path / "cap.json"
        cap.write_text(json.dumps(capacity))
        argv += ["--capacity", str(cap)]
    code = cli(*argv)
    out = [json.loads(x) for x in dst.read_text().splitlines()] if dst.exists() else []
    return code, out


def used(lines: list[str], out: list[dict[str, object]]) -> list[tuple[str, datetime, datetime, int]]:
    """(pool, start, end, gpus) of every planned segment, read back from the output as tooling would."""
    rows = []
    for text, result in zip(lines, out, strict=True):
        raw = json.loads(text)
        for seg in result["segments"]:  # type: ignore[attr-defined]
            pool, gpus = raw.get("pool", raw["zone"]), raw.get("gpus", 1)
            rows.append((pool, parse_instant(seg["start"]), parse_instant(seg["end"]), gpus))
    return rows


def test_without_capacity_the_output_is_todays(tmp_path: Path) -> None:
    """The golden output was written by `llmasos plan --batch` before --capacity existed (lines with and without
    "gpus"/"pool", gaps, interruptible jobs, odd durations); it must not change by a byte."""
    dst = tmp_path / "out.jsonl"
    assert cli("plan", "--batch", str(DATA / "batch_golden_in.jsonl"), "--output", str(dst)) == 0
    assert dst.read_text() == (DATA / "batch_golden_out.jsonl").read_text()


def test_with_ample_capacity_the_output_is_the_same(tmp_path: Path) -> None:
    lines = (DATA / "batch_golden_in.jsonl").read_text().splitlines()
    pools = {json.loads(x).get("pool", json.loads(x)["zone"]): {"gpus": 8} for x in lines}
    code, out = run(tmp_path, lines, {"pools": pools})
    assert code == 0
    golden = [json.loads(x) for x in (DATA / "batch_golden_out.jsonl").read_text().splitlines()]
    assert out == golden


def test_a_herd_is_spread_so_the_pool_is_never_over_subscribed(tmp_path: Path) -> None:
    lines = [batch_line(id=f"j{i}", gpus=2, pool="a100", duration_seconds=3600) for i in range(4)]
    capacity = {
        "pools": {
            "a100": {
                "gpus": 4,
                "reserved": [{"start": "2024-03-06T03:00:00Z", "end": "2024-03-06T04:00:00Z", "gpus": 2}],
            }
        }
    }
    code, out = run(tmp_path, lines, capacity)
    assert code == 0
    assert [o["id"] for o in out] == ["j0", "j1", "j2", "j3"]
    assert all("error" not in o for o in out)
    reserved = [("a100", parse_instant("2024-03-06T03:00:00Z"), parse_instant("2024-03-06T04:00:00Z"), 2)]
    assert capacity_violations({"a100": 4}, used(lines, out) + reserved) == []
    assert all(parse_instant(o["segments"][-1]["end"]) <= parse_instant("2024-03-06T06:00:00Z") for o in out)  # type: ignore[index]


def test_defaults_gpus_one_and_pool_the_zone(tmp_path: Path) -> None:
    lines = [batch_line(id="a", duration_seconds=3600), batch_line(id="b", duration_seconds=3600)]
    code, out = run(tmp_path, lines, {"pools": {"DE": {"gpus": 1}}})
    assert code == 0
    assert capacity_violations({"DE": 1}, used(lines, out)) == []
    assert out[0]["segments"] != out[1]["segments"]


def test_an_impossible_deadline_gets_an_error_and_its_best_segments(tmp_path: Path) -> None:
    lines = [batch_line(id="late", gpus=4, pool="p", duration_seconds=7200, deadline="2024-03-06T03:00:00Z")]
    capacity = {
        "pools": {
            "p": {"gpus": 4, "reserved": [{"start": "2024-03-06T00:00:00Z", "end": "2024-03-06T02:00:00Z", "gpus": 1}]}
        }
    }
    code, out = run(tmp_path, lines, capacity)
    assert code == 0
    assert out[0]["segments"] == [{"start": "2024-03-06T02:00:00Z", "end": "2024-03-06T04:00:00Z"}]
    assert "earliest feasible end 2024-03-06T04:00:00Z" in str(out[0]["error"])


@pytest.mark.parametrize(
    ("line", "capacity", "message"),
    [
        (batch_line(pool="h100"), {"pools": {"a100": {"gpus": 8}}}, "line 2: pool 'h100' is not in"),
        (batch_line(zone="SE"), {"pools": {"DE": {"gpus": 8}}}, "line 2: pool 'SE' is not in"),
        (batch_line(gpus=9, pool="DE"), {"pools": {"DE": {"gpus": 8}}}, "line 2: needs 9 GPUs, more than pool 'DE'"),
        (batch_line(gpus=0), {"pools": {"DE": {"gpus": 8}}}, "line 2: gpus must be an integer >= 1"),
        (batch_line(gpus=True), {"pools": {"DE": {"gpus": 8}}}, "line 2: gpus must be an integer >= 1"),
        (batch_line(pool=3), {"pools": {"DE": {"gpus": 8}}}, "line 2: pool must be a non-empty string"),
        (batch_line(), {"pool": {}}, 'expected {"pools"'),
        (batch_line(), {"pools": {"DE": {"gpus": -1}}}, "pools.DE.gpus must be an integer >= 0"),
        (
            batch_line(),
            {"pools": {"DE": {"gpus": 2, "reserved": [{"start": "x", "end": "y", "gpus": 1}]}}},
            "pools.DE.reserved[0].start",
        ),
        # A misspelt field would leave taken capacity counted as free: refused, not ignored.
        (batch_line(), {"pools": {"DE": {"gpus": 2, "reserverd": []}}}, "pools.DE: unknown field 'reserverd'"),
        (batch_line(), {"pools": {"DE": {"gpus": 2}}, "pool": {}}, "cap.json: unknown field 'pool'"),
        (
            batch_line(),
            {"pools": {"DE": {"gpus": 2, "reserved": [{"start": START, "end": END, "gpus": 1, "pool": "DE"}]}}},
            "pools.DE.reserved[0]: unknown field 'pool'",
        ),
        # Reservations that alone over-fill the pool: no plan can keep the guarantee.
        (
            batch_line(),
            {"pools": {"DE": {"gpus": 2, "reserved": [{"start": START, "end": END, "gpus": 3}]}}},
            "the reservations alone exceed their pool: pool DE: 3 GPUs in use at 2024-03-06T00:00:00+00:00, "
            "capacity 2",
        ),
        (
            batch_line(),
            {"pools": {"DE": {"gpus": 2, "reserved": [{"start": START, "end": END, "gpus": 1}] * 3}}},
            "pool DE: 3 GPUs in use",
        ),
    ],
)
def test_bad_input_names_the_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, capacity: object, message: str
) -> None:
    code, out = run(tmp_path, [batch_line(), line], capacity)
    assert code == 2  # bad input: EXIT_USAGE
    assert out == []
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
