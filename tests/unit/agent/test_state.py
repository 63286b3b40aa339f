"""The crash-safe record: round trip, atomic replacement, and what happens to a corrupt file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from llmasos.agent.energy import EnergyLedger, MeterState, PodRef
from llmasos.agent.power_policy import GpuLimits, Probe, start_search
from llmasos.agent.state import AgentState, AppliedCap, StateStore, from_json, to_json

POD = PodRef("ns", "w-0", "uid-0", "job")


def sample_state() -> AgentState:
    return AgentState(
        node="node-1",
        caps=(AppliedCap(0, "GPU-a", 400_000, 320_000, "uid-0"), AppliedCap(3, "GPU-d", 400_000, 250_000, "uid-0")),
        assignments=(("uid-0", (0, 3)),),
        ledger=EnergyLedger({(0, POD): 1234.5, (1, None): 99.0}),
        meters=((0, MeterState(10.0, 300.0, 5_000, 9.5)), (1, MeterState(10.0, 60.0, None))),
        ended=(("uid-old", 5.0),),
    )


def test_round_trip() -> None:
    assert from_json(to_json(sample_state())) == sample_state()


def test_round_trip_with_a_search() -> None:
    limits = GpuLimits(100.0, 400.0, 400.0)
    probe = Probe(400.0, 12.5, 380.0, 60.0, 0.01)
    search = replace(start_search(limits, 1.1, 5.0), phase="Profile", target_w=350.0, baseline=probe,
                     probes=(probe, Probe(375.0, 12.4, 360.0, 30.0)), queue=(325.0,), history=(probe,), searches=2)
    state = replace(sample_state(), searches=(("uid-0", search),))
    assert from_json(to_json(state)) == state


def test_a_record_without_searches_still_loads() -> None:
    text = to_json(sample_state()).replace('"searches": {},', "")
    assert "searches" not in text
    assert from_json(text) == sample_state()


def test_meters_written_before_counter_since_still_load() -> None:
    text = to_json(sample_state()).replace("5000,\n   9.5", "5000")
    assert '9.5' not in text
    assert dict(from_json(text).meters)[0] == MeterState(10.0, 300.0, 5_000, None)


def test_store_saves_atomically_and_loads(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "sub" / "state.json")
    assert store.load() == AgentState()
    store.save(sample_state())
    assert StateStore(tmp_path / "sub" / "state.json").load() == sample_state()
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["state.json"]  # no temporary files left


def test_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "caps": [{"gpu": 0')
    assert StateStore(path).load() == AgentState()
    assert not path.exists()
    assert (tmp_path / "state.corrupt").exists()


def test_unknown_version_is_treated_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 99}')
    assert StateStore(path).load() == AgentState()
